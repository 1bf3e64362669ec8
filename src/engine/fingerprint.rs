//! 128-bit fingerprints: a keyed SipHash (key drawn at start, so no input can be crafted to
//! collide) of the input and of the input followed by one more byte, two pseudo-random values of
//! distinct messages from one pass over the input. What is kept between passes is kept by the
//! fingerprint of what it was made from.
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::LazyLock;

static KEY: LazyLock<RandomState> = LazyLock::new(RandomState::new);

/// The fingerprint of what `f` feeds a hasher.
pub(crate) fn hash128(f: impl FnOnce(&mut dyn Hasher)) -> u128 {
    let mut h = KEY.build_hasher();
    f(&mut h);
    let low = h.finish();
    // `finish` leaves the state as it is: the second value hashes the input and one byte more.
    h.write_u8(0xff);
    (u128::from(h.finish()) << 64) | u128::from(low)
}

/// Keys that are fingerprints already (uniform, unguessable): used as their own hash.
#[derive(Default, Clone, Copy)]
pub(crate) struct Fingerprints;

impl BuildHasher for Fingerprints {
    type Hasher = Folded;
    fn build_hasher(&self) -> Folded {
        Folded(0)
    }
}

#[derive(Default)]
pub(crate) struct Folded(u64);

impl Hasher for Folded {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(b);
        }
    }

    fn write_u128(&mut self, v: u128) {
        self.0 ^= (v as u64) ^ ((v >> 64) as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
