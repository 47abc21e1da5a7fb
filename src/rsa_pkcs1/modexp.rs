//! Modular exponentiation for the RSA public-key operation, shaped for wasm32.
//!
//! Wasm has a 64-bit multiply but no 64×64→128-bit product, and general bignum code either
//! emulates the wide product or carries after every limb product. Here limbs are 28 bits
//! wide (26 for moduli above about 7,000 bits), held in `u32`, and columns are `u64`: a
//! limb product is below 2^56 (2^52), so a whole column of products adds up without
//! carrying, and the inner loops only multiply and add, two rows of the schoolbook product
//! per pass. Carries are propagated once per pass.
//!
//! Montgomery multiplication (Montgomery 1985; the "separated operand scanning" order of
//! Koç, Acar and Kaliski 1996): the product is formed in full, then reduced one limb at a
//! time. With R = 2^(width·limbs) > 4n, inputs below 2n give an output below 2n, so no
//! conditional subtraction is needed between steps (Walter 1999); only the result is
//! brought below n.
//!
//! Variable time: the key, the signature and the result are all public.

/// Most column terms a `u64` accumulator may take with 28-bit limbs: each term is below
/// 2^56, and a column also holds one normalised limb and an incoming carry.
const MAX_LIMBS_AT_28_BITS: usize = 250;

/// One limb, below 2^width; products and columns are `u64`.
type Limb = u32;

/// An odd modulus with its Montgomery constants, computed once per key.
#[derive(Debug, Clone)]
pub(super) struct Modulus {
    /// Limb width in bits (28 or 26).
    width: u32,
    /// 2^width − 1.
    mask: u64,
    /// n, least significant limb first.
    n: Vec<Limb>,
    /// −n⁻¹ mod 2^width.
    n0_inv: u64,
    /// R² mod n, with R = 2^(width·limbs).
    r_squared: Vec<Limb>,
}

impl Modulus {
    /// From the big-endian bytes of an odd modulus of `bits` bits (`bits` ≥ 2).
    /// None if the modulus is even or zero.
    pub(super) fn new(n_be: &[u8], bits: usize) -> Option<Modulus> {
        // R = 2^(width·limbs) must exceed 4n, i.e. hold bits + 2 bits.
        let limbs_at = |width: usize| bits.saturating_add(2).div_ceil(width);
        let (width, count) = match limbs_at(28) {
            count if count <= MAX_LIMBS_AT_28_BITS => (28u32, count),
            // 26-bit terms are below 2^52: a column may take 4,000 of them.
            _ => (26u32, limbs_at(26)),
        };
        let mask = (1u64 << width).wrapping_sub(1);
        let n = limbs_from_be(n_be, width, count)?;
        let n0 = *n.first()?;
        if n0 & 1 == 0 {
            return None;
        }
        let n0_inv = inverse_mod_2_64(u64::from(n0)).wrapping_neg() & mask;
        let mut modulus = Modulus {
            width,
            mask,
            n,
            n0_inv,
            r_squared: Vec::new(),
        };
        modulus.r_squared = modulus.compute_r_squared(bits)?;
        Some(modulus)
    }

    fn limbs(&self) -> usize {
        self.n.len()
    }

    /// log2 R.
    fn bit_capacity(&self) -> usize {
        self.limbs().saturating_mul(self.width as usize)
    }

    /// `base`^e mod n as big-endian bytes, `k` of them, or None if `base` (big-endian) is
    /// not below n. `e` must be odd and at least 3.
    pub(super) fn pow_be(&self, base_be: &[u8], e: u64, k: usize) -> Option<Vec<u8>> {
        let base = limbs_from_be(base_be, self.width, self.limbs())?;
        if !less_than(&base, &self.n) || e < 3 || e & 1 == 0 {
            return None;
        }
        let mut scratch = vec![0u64; self.limbs().checked_mul(2)?.checked_add(1)?];
        // base·R mod n (below 2n): Montgomery form of the base.
        let mut base_r = base.clone();
        self.multiply(&mut base_r, &self.r_squared, &mut scratch);
        let mut x = base_r.clone();
        // Left to right over the bits of e below the top one, except bit 0 (set, as e is
        // odd): x = base^(e >> 1)·R afterwards.
        let top = 63u32.saturating_sub(e.leading_zeros());
        for bit in (1..top).rev() {
            self.square(&mut x, &mut scratch);
            if (e >> bit) & 1 == 1 {
                self.multiply(&mut x, &base_r, &mut scratch);
            }
        }
        // Bit 0: square, then multiply by the plain base, which also divides out R:
        // base^(e−1)·R · base · R⁻¹ = base^e (below 1.5n).
        self.square(&mut x, &mut scratch);
        self.multiply(&mut x, &base, &mut scratch);
        self.bring_below_n(&mut x);
        be_from_limbs(&x, self.width, k)
    }

    /// x ← x·y·R⁻¹ mod n (below 2n, given x and y below 2n).
    fn multiply(&self, x: &mut [Limb], y: &[Limb], t: &mut [u64]) {
        t.fill(0);
        for (pair, factors) in x.chunks(2).enumerate() {
            let row = t.get_mut(pair.saturating_mul(2)..).unwrap_or_default();
            match *factors {
                [first, second] => multiply_add_two_rows(row, y, first.into(), second.into()),
                [last] => multiply_add_row(row, y, last),
                _ => {}
            }
        }
        self.reduce(t, x);
    }

    /// x ← x²·R⁻¹ mod n (below 2n, given x below 2n). Each cross product is formed once,
    /// doubled, which spares almost half the multiplications.
    fn square(&self, x: &mut [Limb], t: &mut [u64]) {
        t.fill(0);
        // Row i adds 2·x[i]·x[j] for j > i from column 2i + 1.
        for (pair, factors) in x.chunks(2).enumerate() {
            let i = pair.saturating_mul(2);
            let above = x.get(i.saturating_add(1)..).unwrap_or_default();
            let row = t
                .get_mut(i.saturating_mul(2).saturating_add(1)..)
                .unwrap_or_default();
            match *factors {
                [first, second] => {
                    let (first, second) = (u64::from(first) << 1, u64::from(second) << 1);
                    multiply_add_two_rows(row, above, first, second);
                    // Row i + 1 starts one column later than the kernel assumes: take
                    // back its term at column 2i + 2, 2·x[i+1]·x[i+1] (a diagonal).
                    if let (Some(column), Some(&next)) = (row.get_mut(1), above.first()) {
                        *column = column.wrapping_sub(second.wrapping_mul(u64::from(next)));
                    }
                }
                [last] => multiply_add_row(row, above, last << 1),
                _ => {}
            }
        }
        for (i, &xi) in x.iter().enumerate() {
            if let Some(diagonal) = t.get_mut(i.saturating_mul(2)) {
                *diagonal = diagonal.wrapping_add(u64::from(xi).wrapping_mul(u64::from(xi)));
            }
        }
        self.reduce(t, x);
    }

    /// Montgomery reduction of the product in `t` (2·limbs + 1 columns, unnormalised) into
    /// `out`: out = t·R⁻¹ mod n, below 2n.
    fn reduce(&self, t: &mut [u64], out: &mut [Limb]) {
        normalize(t, self.width, self.mask);
        let (width, mask, n0_inv) = (self.width, self.mask, self.n0_inv);
        let n0 = self.n.first().map_or(0, |&n0| u64::from(n0));
        let n1 = self.n.get(1).map_or(0, |&n1| u64::from(n1));
        let mut i = 0usize;
        while i < self.limbs() {
            let columns = t.get_mut(i..).unwrap_or_default();
            let (Some(&t0), Some(&t1)) = (columns.first(), columns.get(1)) else {
                return;
            };
            // m0·n cancels the low `width` bits of column i; m1·n, one column up,
            // those of column i + 1 once m0·n and the carry have reached it.
            let m0 = t0.wrapping_mul(n0_inv) & mask;
            if i.saturating_add(1) < self.limbs() {
                let carry0 = t0.wrapping_add(m0.wrapping_mul(n0)) >> width;
                let t1 = t1.wrapping_add(m0.wrapping_mul(n1)).wrapping_add(carry0);
                let m1 = t1.wrapping_mul(n0_inv) & mask;
                multiply_add_two_rows(columns, &self.n, m0, m1);
                carry_up(columns, 0, width);
                carry_up(columns, 1, width);
                i = i.saturating_add(2);
            } else {
                multiply_add_row(columns, &self.n, m0 as Limb);
                carry_up(columns, 0, width);
                i = i.saturating_add(1);
            }
        }
        let upper = t.get_mut(self.limbs()..).unwrap_or_default();
        normalize(upper, self.width, self.mask);
        // The value is below 2n < R, so it fits in `limbs` limbs and the top column is 0.
        for (o, &u) in out.iter_mut().zip(upper.iter()) {
            *o = u as Limb;
        }
    }

    /// R² mod n, which takes a value into Montgomery form. R mod n, the Montgomery form
    /// of one, comes from 2^(bits−1) by doubling; then the Montgomery form of 2^a is squared
    /// (a to 2a) and doubled (a to a + 1) along the bits of log2 R, ending at 2^log2R = R.
    fn compute_r_squared(&self, bits: usize) -> Option<Vec<Limb>> {
        let top = bits.checked_sub(1)?;
        let width = self.width as usize;
        let mut x = vec![0 as Limb; self.limbs()];
        *x.get_mut(top.checked_div(width)?)? = 1 << top.checked_rem(width)?;
        for _ in top..self.bit_capacity() {
            self.double(&mut x);
        }
        let mut scratch = vec![0u64; self.limbs().checked_mul(2)?.checked_add(1)?];
        let exponent = self.bit_capacity();
        for bit in (0..usize::BITS.saturating_sub(exponent.leading_zeros())).rev() {
            self.square(&mut x, &mut scratch);
            self.bring_below_n(&mut x);
            if (exponent >> bit) & 1 == 1 {
                self.double(&mut x);
            }
        }
        Some(x)
    }

    /// x ← 2x mod n, for x below n.
    fn double(&self, x: &mut [Limb]) {
        let mut carry: Limb = 0;
        for limb in x.iter_mut() {
            let doubled = (*limb << 1) | carry;
            *limb = doubled & self.mask as Limb;
            carry = doubled >> self.width;
        }
        // 2x < 2n < R: no carry out of the top limb, at most one subtraction.
        self.bring_below_n(x);
    }

    /// x ← x mod n, for x below 2n.
    fn bring_below_n(&self, x: &mut [Limb]) {
        if !less_than(x, &self.n) {
            subtract_in_place(x, &self.n, self.mask);
        }
    }
}

/// row[j] += factor·y[j]: the inner loop of every multiplication (the bounds on limb
/// widths keep each column below 2^64). Separate slices, so the compiler may vectorise.
#[inline(always)]
fn multiply_add_row(row: &mut [u64], y: &[Limb], factor: Limb) {
    let factor = u64::from(factor);
    for (rj, &yj) in row.iter_mut().zip(y) {
        *rj = rj.wrapping_add(factor.wrapping_mul(u64::from(yj)));
    }
}

/// Two rows of a schoolbook product at once, the second one column up:
/// columns[k] += first·y[k] + second·y[k − 1]. Each column is loaded and stored
/// once for two products, which is most of what V8 spends in these loops.
#[inline(always)]
fn multiply_add_two_rows(columns: &mut [u64], y: &[Limb], first: u64, second: u64) {
    let (Some(&y_first), Some(&y_last)) = (y.first(), y.last()) else {
        return;
    };
    if let Some(column) = columns.first_mut() {
        *column = column.wrapping_add(first.wrapping_mul(u64::from(y_first)));
    }
    // windows(2) is [y[k − 1], y[k]] for k = 1, 2, ...
    let middle = columns.get_mut(1..).unwrap_or_default();
    for (column, pair) in middle.iter_mut().zip(y.windows(2)) {
        if let &[below, here] = pair {
            *column = column
                .wrapping_add(first.wrapping_mul(u64::from(here)))
                .wrapping_add(second.wrapping_mul(u64::from(below)));
        }
    }
    if let Some(column) = columns.get_mut(y.len()) {
        *column = column.wrapping_add(second.wrapping_mul(u64::from(y_last)));
    }
}

/// Moves what is above the low `width` bits of columns[k] into columns[k + 1].
fn carry_up(columns: &mut [u64], k: usize, width: u32) {
    let carry = columns.get(k).map_or(0, |&c| c >> width);
    if let Some(next) = columns.get_mut(k.saturating_add(1)) {
        *next = next.wrapping_add(carry);
    }
}

/// Propagates carries so that every column but the last is below 2^width.
fn normalize(t: &mut [u64], width: u32, mask: u64) {
    let mut carry = 0u64;
    for tj in t.iter_mut() {
        let v = tj.wrapping_add(carry);
        *tj = v & mask;
        carry = v >> width;
    }
}

/// a < b for normalised limbs of equal count.
fn less_than(a: &[Limb], b: &[Limb]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x < y;
        }
    }
    false
}

/// a ← a − b mod 2^(width·limbs), for normalised limbs.
fn subtract_in_place(a: &mut [Limb], b: &[Limb], mask: u64) {
    let mut borrow: Limb = 0;
    for (x, &y) in a.iter_mut().zip(b) {
        let v = x.wrapping_sub(y).wrapping_sub(borrow);
        *x = v & mask as Limb;
        borrow = v >> 31;
    }
}

/// x⁻¹ mod 2^64 for odd x, by Newton's iteration (each step doubles the correct bits,
/// starting from 3: x·x ≡ 1 mod 8).
fn inverse_mod_2_64(x: u64) -> u64 {
    let mut inverse = x;
    for _ in 0..5 {
        inverse = inverse.wrapping_mul(2u64.wrapping_sub(x.wrapping_mul(inverse)));
    }
    inverse
}

/// Big-endian bytes to `count` limbs of `width` bits, or None if the value needs more.
fn limbs_from_be(bytes: &[u8], width: u32, count: usize) -> Option<Vec<Limb>> {
    let mask = (1u64 << width).wrapping_sub(1);
    let mut limbs = Vec::with_capacity(count);
    let mut acc = 0u64;
    let mut held = 0u32;
    for &byte in bytes.iter().rev() {
        acc |= u64::from(byte) << held;
        held = held.saturating_add(8);
        if held >= width {
            limbs.push((acc & mask) as Limb);
            acc >>= width;
            held = held.saturating_sub(width);
        }
    }
    if held > 0 {
        limbs.push(acc as Limb);
    }
    // Limbs above `count` may only be zero.
    if limbs.iter().skip(count).any(|&limb| limb != 0) {
        return None;
    }
    limbs.resize(count, 0);
    Some(limbs)
}

/// Normalised limbs to exactly `k` big-endian bytes, or None if the value needs more.
fn be_from_limbs(limbs: &[Limb], width: u32, k: usize) -> Option<Vec<u8>> {
    let mut bytes = Vec::with_capacity(limbs.len().saturating_mul(4));
    let mut acc = 0u64;
    let mut held = 0u32;
    for &limb in limbs {
        acc |= u64::from(limb) << held;
        held = held.saturating_add(width);
        while held >= 8 {
            bytes.push(acc as u8);
            acc >>= 8;
            held = held.saturating_sub(8);
        }
    }
    if held > 0 {
        bytes.push(acc as u8);
    }
    if bytes.iter().skip(k).any(|&b| b != 0) {
        return None;
    }
    bytes.resize(k, 0);
    bytes.reverse();
    Some(bytes)
}

#[cfg(test)]
mod tests {
    //! Checked against crypto-bigint's Montgomery arithmetic (an independent implementation)
    //! on random moduli and bases of every size kfauth accepts.

    use super::*;
    use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
    use crypto_bigint::{BoxedUint, Odd};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// A small deterministic generator (xorshift64*), so failures reproduce.
    struct Bytes(u64);

    impl Bytes {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn fill(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    fn reference(n_be: &[u8], base: &[u8], e: u64) -> Vec<u8> {
        let precision = (n_be.len() * 8) as u32;
        let n = Odd::new(BoxedUint::from_be_slice(n_be, precision).unwrap()).unwrap();
        let params = BoxedMontyParams::new_vartime(n);
        let base = BoxedUint::from_be_slice(base, precision).unwrap();
        let e = BoxedUint::from_be_slice_vartime(&e.to_be_bytes());
        let out = BoxedMontyForm::new(base, &params).pow(&e).retrieve();
        let out = out.to_be_bytes();
        out[out.len() - n_be.len()..].to_vec()
    }

    fn bits_of(n: &[u8]) -> usize {
        n.len() * 8 - n[0].leading_zeros() as usize
    }

    #[test]
    fn agrees_with_crypto_bigint_on_random_moduli_and_bases() {
        let mut rng = Bytes(0x9e37_79b9_7f4a_7c15);
        // Byte lengths around every limb-width and size boundary, including the switch
        // to 26-bit limbs (above 250 limbs of 28 bits) and 8192-bit moduli.
        let lengths: &[usize] = if cfg!(target_arch = "wasm32") {
            &[256, 384, 512, 875, 876, 1024]
        } else {
            &[
                256, 257, 300, 384, 511, 512, 700, 873, 874, 875, 876, 877, 1000, 1024,
            ]
        };
        for &len in lengths {
            for round in 0..3 {
                let mut n = rng.fill(len);
                n[0] |= 0x80 >> (round % 3);
                n[len - 1] |= 1;
                let bits = bits_of(&n);
                let modulus = Modulus::new(&n, bits).unwrap();
                for e in [3u64, 65_537, (1 << 33) - 1, 0x1_2345_6789] {
                    let mut base = rng.fill(len);
                    base[0] &= n[0] >> 1;
                    assert_eq!(
                        modulus.pow_be(&base, e, len).unwrap(),
                        reference(&n, &base, e),
                        "{len} bytes, e = {e}"
                    );
                }
            }
        }
    }

    #[test]
    fn extreme_bases() {
        let mut rng = Bytes(7);
        for len in [256usize, 512, 1024] {
            let mut n = rng.fill(len);
            n[0] |= 0x80;
            n[len - 1] |= 1;
            let modulus = Modulus::new(&n, bits_of(&n)).unwrap();
            let mut n_minus_1 = n.clone();
            n_minus_1[len - 1] ^= 1;
            let zero = vec![0u8; len];
            let mut one = vec![0u8; len];
            one[len - 1] = 1;
            for base in [&zero, &one, &n_minus_1] {
                assert_eq!(
                    modulus.pow_be(base, 65_537, len).unwrap(),
                    reference(&n, base, 65_537)
                );
            }
            // n − 1 squared is 1: (−1)^65537 = −1.
            assert_eq!(modulus.pow_be(&n_minus_1, 65_537, len).unwrap(), n_minus_1);
        }
    }

    #[test]
    fn a_base_not_below_the_modulus_is_refused() {
        let mut n = vec![0xffu8; 256];
        n[255] = 0xfb;
        let modulus = Modulus::new(&n, 2048).unwrap();
        assert!(modulus.pow_be(&n, 65_537, 256).is_none());
        assert!(modulus.pow_be(&[0xff; 256], 65_537, 256).is_none());
        assert!(modulus.pow_be(&[0xff; 257], 65_537, 256).is_none());
        let mut even = n.clone();
        even[255] = 0xfa;
        assert!(Modulus::new(&even, 2048).is_none());
    }
}
