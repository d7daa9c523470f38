//! `pays.Meta`: the family itself — its element folders, compiled into the crate and laid
//! as the app's framework layer, the loaders of its Types, and the services its elements
//! share (the order store, the host's settings, the hooks), which [`register`] provides.

use std::sync::Arc;

use include_dir::{Dir, include_dir};
use jit_runtime::{App, AppBuilder};

use crate::db::PayStore;
use crate::error::PayError;
use crate::events::PayEvents;
use crate::models::{PAY_LOG_MODEL, PayLogModelLoader};
use crate::services::{PAY_SVC, PaySvcLoader};
use crate::settings::PaysSettings;
use crate::wechat_pay_type::{WECHAT_PAY_TYPE, WechatPayLoader};
use crate::wechat_pay_v3_type::{WECHAT_PAY_V3_TYPE, WechatPayV3Loader};

/// The fullName of the family's Meta.
pub const PAYS_META: &str = "pays.Meta";

/// The family's element folders (`pays/Meta`, `pays/WechatPayType`, `pays/WechatPayV3Type`,
/// `pays/models/PayLogModel`, `pays/services/PaySvc`), rooted like an app's `elements/`.
pub static ELEMENTS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/elements");

/// Adds the family to an app: its elements to the framework layer, its loaders, and the
/// services its elements use — the order store, the host settings, and the store's
/// [`PayEvents`] (hosted code subscribes through `app.service::<PayEvents>()`).
pub fn register(builder: AppBuilder, store: PayStore, settings: PaysSettings) -> AppBuilder {
    store.set_order_cache_capacity(settings.order_cache_capacity);
    let hooks: Arc<PayEvents> = store.outbox().hooks();
    register_loaders(builder)
        .provide(Arc::new(store))
        .provide(Arc::new(settings))
        .provide(hooks)
}

/// Adds the family's elements and loaders but none of the services they need: enough for
/// [`AppBuilder::check`] (which instances have a loader) without a database. An app built
/// from it fails at the first pay element, naming the missing service.
pub fn register_loaders(builder: AppBuilder) -> AppBuilder {
    builder
        .framework_layer(&ELEMENTS)
        .loader(WECHAT_PAY_TYPE, WechatPayLoader)
        .loader(WECHAT_PAY_V3_TYPE, WechatPayV3Loader)
        .loader(PAY_LOG_MODEL, PayLogModelLoader)
        .loader(PAY_SVC, PaySvcLoader)
}

/// The service `T` (named `name` in the error) that [`register`] provides to `app`.
pub(crate) fn service<T: Send + Sync + 'static>(app: &App, name: &str) -> Result<Arc<T>, PayError> {
    app.service::<T>().ok_or_else(|| {
        PayError::unavailable(format!("the app provides no {name} (jit_pays::register)"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The constant names the folder the family ships.
    #[test]
    fn the_meta_is_one_of_the_family_folders() {
        assert!(ELEMENTS.get_file("pays/Meta/e.json").is_some());
        assert_eq!(PAYS_META.replace('.', "/"), "pays/Meta");
    }
}
