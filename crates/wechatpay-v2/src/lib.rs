//! A strict WeChat Pay V2 (XML) merchant API client: money, signing, XML, calls and notifies.
