//! A [`Queue`] handle as it travels to another process: where its broker is and its limits
//! (or, with the feature `cluster`, which queue on which server), and the handle made again
//! from that on arrival.

use std::marker::PhantomData;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[cfg(feature = "cluster")]
use crate::cluster::queue::stream::Stream as ClusterStream;
use crate::transport::endpoint::Endpoint;

use super::{Queue, remote};

/// What a handle carries to another process: where the broker is and its limits.
#[derive(Serialize, Deserialize)]
struct Recipe {
    endpoint: Endpoint,
    max_frame: u32,
    max_message: u32,
    prefetch: u32,
    /// A queue on a cluster's server.
    #[cfg(feature = "cluster")]
    cluster: Option<crate::cluster::queue::recipe::Recipe>,
}

impl<T> Serialize for Queue<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Recipe {
            endpoint: self.endpoint.clone(),
            max_frame: self.max_frame,
            max_message: self.max_message,
            prefetch: self.prefetch,
            #[cfg(feature = "cluster")]
            cluster: self.cluster.as_ref().map(|stream| stream.recipe().clone()),
        }
        .serialize(serializer)
    }
}

impl<'de, T> Deserialize<'de> for Queue<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let recipe = Recipe::deserialize(deserializer)?;
        #[cfg(feature = "cluster")]
        if let Some(cluster) = &recipe.cluster {
            let stream = ClusterStream::open(cluster).map_err(serde::de::Error::custom)?;
            return Ok(Self::on_stream(stream));
        }
        remote::handle_made(&recipe.endpoint);
        Ok(Self {
            endpoint: recipe.endpoint,
            max_frame: recipe.max_frame,
            max_message: recipe.max_message,
            prefetch: recipe.prefetch.max(1),
            broker: None,
            #[cfg(feature = "cluster")]
            cluster: None,
            _data: PhantomData,
        })
    }
}
