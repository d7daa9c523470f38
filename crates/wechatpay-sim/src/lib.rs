//! An offline WeChat Pay V2 gateway simulator for demos and tests.
