//! Tests of the framing that need no gRPC: how blobs are regrouped.

use bytes::Bytes;
use futures::StreamExt;
use satchel_proto::MAX_CHUNK;

use super::{rechunk, FLUSH_AT};

async fn pieces(input: Vec<Bytes>) -> Vec<Bytes> {
    let body = futures::stream::iter(input.into_iter().map(Ok)).boxed();
    rechunk(body).map(|p| p.unwrap()).collect().await
}

#[tokio::test]
async fn large_pieces_go_out_as_slices_of_themselves() {
    let big = Bytes::from(vec![7u8; 2 * MAX_CHUNK + FLUSH_AT + 10]);
    let range = big.as_ptr_range();
    let out = pieces(vec![big.clone()]).await;
    let sizes: Vec<usize> = out.iter().map(Bytes::len).collect();
    assert_eq!(sizes, [MAX_CHUNK, MAX_CHUNK, FLUSH_AT + 10]);
    // Each points into the input's own buffer: no copy.
    for piece in &out {
        assert!(range.contains(&piece.as_ptr()), "a large piece was copied");
    }
    assert_eq!(out.concat(), big);
}

#[tokio::test]
async fn small_pieces_are_gathered_up_to_the_flush_size() {
    let small: Vec<Bytes> = (0..100u8).map(|i| Bytes::from(vec![i; 16 << 10])).collect();
    let out = pieces(small.clone()).await;
    let sizes: Vec<usize> = out.iter().map(Bytes::len).collect();
    assert!(
        sizes[..sizes.len() - 1].iter().all(|&n| n == FLUSH_AT),
        "{sizes:?}"
    );
    assert_eq!(out.concat(), small.concat());
}
