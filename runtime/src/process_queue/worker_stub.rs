//! TEMPORARY stand-in for crate::worker until the workers branch is merged.
#![allow(dead_code, missing_docs)]
use crate::error::Error;
use crate::pool::Spread;
pub(crate) struct Worker<R>(std::marker::PhantomData<R>);
impl<R> Worker<R> {
    pub(crate) fn is_alive(&self) -> bool { false }
    pub(crate) fn kill(&self) -> Result<(), Error> { Ok(()) }
    pub(crate) fn pid(&self) -> Option<u32> { None }
}
pub(crate) fn run<F, Args>(_f: F, _args: Args) -> Result<Worker<F::Output>, Error>
where F: Spread<Args>, Args: serde::Serialize + serde::de::DeserializeOwned {
    Err(Error::NoWorker("stub".into()))
}
