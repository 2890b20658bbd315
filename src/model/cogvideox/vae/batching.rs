//! Frame batching as the reference does it: `max(n / size, 1)` batches of `size` frames, the
//! first one also taking the `n % size` remainder (17 frames by 8 -> [0,9), [9,17)). Causal conv
//! caches carry across batches; group-norm statistics are per batch.

use std::ops::Range;

/// The frame ranges of each batch (never empty for `n > 0`).
pub fn frame_batches(n: usize, size: usize) -> Vec<Range<usize>> {
    let size = size.max(1);
    let count = (n / size).max(1);
    let rem = n % size;
    (0..count)
        .map(|i| {
            let start = size * i + if i == 0 { 0 } else { rem };
            let end = (size * (i + 1) + rem).min(n);
            start..end
        })
        .filter(|r| !r.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::frame_batches;

    #[test]
    fn first_batch_takes_the_remainder() {
        assert_eq!(frame_batches(17, 8), vec![0..9, 9..17]);
        assert_eq!(frame_batches(5, 2), vec![0..3, 3..5]);
        assert_eq!(frame_batches(13, 2), vec![0..3, 3..5, 5..7, 7..9, 9..11, 11..13]);
        assert_eq!(frame_batches(1, 2), vec![0..1]);
        assert_eq!(frame_batches(9, 8), vec![0..9]);
        assert_eq!(frame_batches(3, 8), vec![0..3]);
        assert_eq!(frame_batches(16, 8), vec![0..8, 8..16]);
    }
}
