//! The gRPC codec of the contract: prost, with one change. The encoder
//! reserves a message's exact encoded length before encoding it, so a
//! multi-MiB array is copied into the send buffer once instead of through
//! a chain of doubling reallocations.

use prost::Message;
use std::marker::PhantomData;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic_prost::ProstDecoder;

/// `tonic_prost::ProstCodec` with an encoder that reserves before it encodes.
#[derive(Debug, Clone, Copy)]
pub struct ReservingCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for ReservingCodec<T, U> {
    fn default() -> Self {
        ReservingCodec(PhantomData)
    }
}

impl<T, U> Codec for ReservingCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ReservingEncoder<T>;
    type Decoder = ReservingDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ReservingEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        ReservingDecoder(ProstDecoder::default())
    }
}

/// Each stream's encode and decode buffers start at 1 KiB, not tonic's
/// 8 KiB: messages are reserved at their exact size anyway, and an idle
/// watch stream (a thousand of them, say) then holds little.
fn stream_buffers() -> BufferSettings {
    BufferSettings::new(1024, 32 * 1024)
}

/// Encodes `T` into a buffer reserved to its exact size.
#[derive(Debug, Clone, Copy)]
pub struct ReservingEncoder<T>(PhantomData<T>);

impl<T: Message> Encoder for ReservingEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.reserve(item.encoded_len());
        item.encode(buf)
            .map_err(|e| Status::internal(format!("encoding a message: {e}")))
    }

    fn buffer_settings(&self) -> BufferSettings {
        stream_buffers()
    }
}

/// Decodes `U` with prost (bytes fields share the receive buffer).
#[derive(Debug)]
pub struct ReservingDecoder<U>(ProstDecoder<U>);

impl<U: Message + Default + 'static> Decoder for ReservingDecoder<U> {
    type Item = U;
    type Error = Status;

    /// A message that does not decode (bad UTF-8, nesting past prost's
    /// recursion limit, truncated fields) is the sender's fault:
    /// INVALID_ARGUMENT, not INTERNAL.
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        // A Set's size does not bound what decoding it costs: count first.
        if std::any::TypeId::of::<U>() == std::any::TypeId::of::<crate::v1::SetRequest>() {
            use bytes::Buf;
            let bytes = buf.chunk();
            let limit = crate::scan::MAX_VALUE_NODES;
            if crate::scan::set_request_values(bytes, limit) == crate::scan::Count::Over {
                return Err(Status::resource_exhausted(format!(
                    "the value holds more than {} elements (lists, maps and their items)",
                    crate::scan::MAX_VALUE_NODES
                )));
            }
        }
        self.0.decode(buf).map_err(|s| match s.code() {
            tonic::Code::Internal => {
                // prost names every field on the way down; the reason is last.
                let reason = s.message().rsplit(": ").next().unwrap_or("undecodable");
                Status::invalid_argument(format!("malformed message: {reason}"))
            }
            _ => s,
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        stream_buffers()
    }
}
