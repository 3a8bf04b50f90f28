//! [`Message`]: what may cross the process boundary as a message. Its own module, below every
//! feature that sends values (the lifecycle, pipes, queues), so none of them reaches for it
//! through `process.rs` and the types that module names.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A message type that may cross the process boundary (`inbox`/`outbox`).
///
/// Implemented for every `Serialize + DeserializeOwned + Send + 'static` type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be sent between processes",
    label = "this type must implement `Serialize` and `DeserializeOwned`",
    note = "add `#[derive(Serialize, Deserialize)]` to `{Self}`"
)]
pub trait Message: Serialize + DeserializeOwned + Send + 'static {}

impl<T: Serialize + DeserializeOwned + Send + 'static> Message for T {}
