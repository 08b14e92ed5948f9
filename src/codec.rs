//! The protobuf codec of the generated `tokenauthority.v1` services and clients: prost's,
//! with a smaller starting buffer.
//!
//! tonic gives each side of every call an encoding buffer of 8 KiB, kept for the call's
//! whole life. A watch stream lives for hours and sends small messages, and the server holds
//! one per connected watcher: at 10,000 watchers tonic's default alone is 80 MiB of heap.
//! This API's messages are small (a page of tokens, the largest routine one, is a few KiB),
//! and a buffer grows when a message needs it, so a small start costs at most an occasional
//! reallocation.

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// The buffer each call starts with, in bytes.
const BUFFER_SIZE: usize = 1024;
/// tonic's default: how much a stream encodes before it lets the transport send.
const YIELD_THRESHOLD: usize = 32 * 1024;

/// [`ProstCodec`] with [`BUFFER_SIZE`] buffers; named in `build.rs` as the generated code's
/// codec.
#[derive(Debug, Clone)]
pub struct SmallBufferCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for SmallBufferCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

fn settings() -> BufferSettings {
    BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD)
}

impl<T, U> Codec for SmallBufferCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(settings())
    }
}
