//! Large zeroed output buffers (the 50 MB colour clip, the 203 MB `video_flow`) with fewer page
//! faults.
//!
//! A fresh allocation of that size is a new mapping whose pages the kernel zero-fills one 4 KiB
//! fault at a time on first write; at Tora's setting those faults cost as much as computing the
//! colours. On Linux the buffer is advised to use transparent huge pages (one fault per 2 MiB)
//! before anything touches it. Where the system says no, this is an ordinary zeroed `Vec`.

/// A zeroed `Vec<T>` of `len` elements, huge-page backed where the OS allows it.
pub fn zeroed<T: Clone + bytemuck::Zeroable>(len: usize) -> Vec<T> {
    // `vec![zeroed; len]` is a calloc: large sizes come as fresh, untouched mappings.
    let v = vec![T::zeroed(); len];
    advise_huge_pages(v.as_ptr().cast(), len * std::mem::size_of::<T>());
    v
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(ptr: *const u8, bytes: usize) {
    const HUGE: usize = 2 << 20;
    if bytes < 4 * HUGE {
        return;
    }
    // Only whole huge pages inside the buffer (madvise wants a page-aligned start).
    let start = (ptr as usize).next_multiple_of(HUGE);
    let end = (ptr as usize + bytes) / HUGE * HUGE;
    if end > start {
        // SAFETY: the range lies inside memory this Vec owns; MADV_HUGEPAGE is advice about how
        // to back it and changes no contents (a refusal is harmless and ignored).
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_ptr: *const u8, _bytes: usize) {}

#[cfg(test)]
mod tests {
    #[test]
    fn buffers_are_zeroed_at_any_size() {
        for len in [0usize, 1, 5 << 20, (9 << 20) + 3] {
            let v: Vec<f32> = super::zeroed(len);
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&x| x == 0.0));
        }
    }
}
