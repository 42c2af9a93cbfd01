//! The protobuf codec of `tenet.v1`: prost's encoding, with a message that
//! does not decode (malformed bytes, or nesting past prost's recursion
//! limit of 100 messages — a `Struct` about 33 levels deep) answered as
//! `INVALID_ARGUMENT`, the caller's mistake, where tonic's own codec says
//! `INTERNAL`. Encoding is tonic-prost's. Nothing else happens here.

use prost::Message;
use std::marker::PhantomData;
use tonic::codec::{DecodeBuf, Decoder as TonicDecoder};
use tonic::Status;
use tonic_prost::ProstEncoder;

/// `Codec<T, U>` encodes `T` and decodes `U` (tonic's generated code names
/// it through `codec_path`).
#[derive(Debug, Clone)]
pub struct Codec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = Decoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        Decoder(PhantomData)
    }
}

/// Decodes `U`; a decode error is `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct Decoder<U>(PhantomData<U>);

impl<U: Message + Default> TonicDecoder for Decoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(src)
            .map(Some)
            .map_err(|e| Status::invalid_argument(format!("malformed protobuf message: {e}")))
    }
}
