//! Fields decomposed over the ranks: each rank holds a block of the
//! global array; rank 0 stitches the blocks into the whole field.

/// The most dimensions a decomposed field has.
pub const MAX_DIMS: usize = 3;
/// A block's description as rank 0 receives it: its dimensions, then the
/// global shape, the block's offset and its shape, each `MAX_DIMS` long.
pub const RECORD_WORDS: usize = 1 + 3 * MAX_DIMS;

/// Where one rank's block sits in the field's global index space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub global: Vec<usize>,
    pub offset: Vec<usize>,
    pub shape: Vec<usize>,
}

/// A block that does not fit its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadBlock(pub String);

impl Block {
    /// A block of `shape` at `offset` in a field of `global` shape
    /// (row-major, 1 to 3 dimensions).
    pub fn new(global: &[usize], offset: &[usize], shape: &[usize]) -> Result<Block, BadBlock> {
        let n = global.len();
        if !(1..=MAX_DIMS).contains(&n) || offset.len() != n || shape.len() != n {
            return Err(BadBlock(format!(
                "a field's global shape, a block's offset and its shape take 1 to {MAX_DIMS} \
                 dimensions each, all the same: got {global:?}, {offset:?}, {shape:?}"
            )));
        }
        for d in 0..n {
            if offset[d]
                .checked_add(shape[d])
                .is_none_or(|end| end > global[d])
            {
                return Err(BadBlock(format!(
                    "a block of shape {shape:?} at {offset:?} does not fit a field of shape {global:?}"
                )));
            }
        }
        if global
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .is_none()
        {
            return Err(BadBlock(format!("a field of shape {global:?} overflows")));
        }
        Ok(Block {
            global: global.to_vec(),
            offset: offset.to_vec(),
            shape: shape.to_vec(),
        })
    }

    /// Its elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The field's elements.
    pub fn global_len(&self) -> usize {
        self.global.iter().product()
    }

    pub fn encode(&self) -> [u64; RECORD_WORDS] {
        let mut r = [0u64; RECORD_WORDS];
        r[0] = self.global.len() as u64;
        for d in 0..self.global.len() {
            r[1 + d] = self.global[d] as u64;
            r[1 + MAX_DIMS + d] = self.offset[d] as u64;
            r[1 + 2 * MAX_DIMS + d] = self.shape[d] as u64;
        }
        r
    }

    pub fn decode(r: &[u64]) -> Result<Block, BadBlock> {
        let n = r.first().map_or(0, |&n| n as usize);
        if r.len() < RECORD_WORDS || !(1..=MAX_DIMS).contains(&n) {
            return Err(BadBlock("a block's description is cut short".into()));
        }
        let dims = |at: usize| {
            r[at..at + n]
                .iter()
                .map(|&x| x as usize)
                .collect::<Vec<_>>()
        };
        Block::new(&dims(1), &dims(1 + MAX_DIMS), &dims(1 + 2 * MAX_DIMS))
    }

    /// Copies `data`, this block's elements in row-major order, into
    /// `field`, the whole field's.
    pub fn place(&self, field: &mut [f64], data: &[f64]) {
        let n = self.shape.len();
        let row = self.shape[n - 1];
        if row == 0 || data.len() < self.len() || field.len() < self.global_len() {
            return;
        }
        // Global strides, in elements.
        let mut stride = vec![1usize; n];
        for d in (0..n - 1).rev() {
            stride[d] = stride[d + 1] * self.global[d + 1];
        }
        let rows = self.len() / row;
        let mut index = vec![0usize; n - 1];
        for r in 0..rows {
            let at: usize = (0..n - 1)
                .map(|d| (self.offset[d] + index[d]) * stride[d])
                .sum::<usize>()
                + self.offset[n - 1];
            field[at..at + row].copy_from_slice(&data[r * row..(r + 1) * row]);
            for d in (0..n - 1).rev() {
                index[d] += 1;
                if index[d] < self.shape[d] {
                    break;
                }
                index[d] = 0;
            }
        }
    }
}

impl Block {
    /// Like [`place`](Self::place), for a block a column-major program
    /// (Fortran) holds: this block's dimensions are the reversed ones (as
    /// its data lies in memory, read row-major), and `field` is row-major
    /// in the true order, so the field shows with the program's own shape.
    pub fn place_transposed(&self, field: &mut [f64], data: &[f64]) {
        let n = self.shape.len();
        if self.is_empty() || data.len() < self.len() || field.len() < self.global_len() {
            return;
        }
        // Strides of the true (reversed) order, row-major, for each of
        // this block's dimensions: dimension d here is n-1-d there.
        let mut true_stride = vec![1usize; n];
        for t in (0..n - 1).rev() {
            true_stride[t] = true_stride[t + 1] * self.global[n - 1 - (t + 1)];
        }
        let stride: Vec<usize> = (0..n).map(|d| true_stride[n - 1 - d]).collect();
        let mut index = vec![0usize; n];
        for &value in &data[..self.len()] {
            let at: usize = (0..n)
                .map(|d| (self.offset[d] + index[d]) * stride[d])
                .sum();
            field[at] = value;
            for d in (0..n).rev() {
                index[d] += 1;
                if index[d] < self.shape[d] {
                    break;
                }
                index[d] = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_stitch_into_the_field_and_bad_ones_are_refused() {
        // A 4x5 field in two strips of rows, and a 2-d tile.
        let top = Block::new(&[4, 5], &[0, 0], &[1, 5]).unwrap();
        let rest = Block::new(&[4, 5], &[1, 0], &[3, 5]).unwrap();
        let mut field = vec![0.0; 20];
        top.place(&mut field, &[1.0; 5]);
        rest.place(
            &mut field,
            &(0..15).map(|i| i as f64 + 10.0).collect::<Vec<_>>(),
        );
        assert_eq!(&field[..5], &[1.0; 5]);
        assert_eq!(field[5], 10.0);
        assert_eq!(field[19], 24.0);
        let tile = Block::new(&[4, 5], &[1, 2], &[2, 2]).unwrap();
        let mut field = vec![0.0; 20];
        tile.place(&mut field, &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(
            (field[7], field[8], field[12], field[13]),
            (1.0, 2.0, 3.0, 4.0)
        );
        assert_eq!(field.iter().filter(|&&x| x != 0.0).count(), 4);
        // 3-d, through its description.
        let b = Block::new(&[2, 3, 4], &[1, 1, 0], &[1, 2, 4]).unwrap();
        assert_eq!(Block::decode(&b.encode()).unwrap(), b);
        let mut field = vec![0.0; 24];
        b.place(&mut field, &[5.0; 8]);
        assert_eq!(field.iter().filter(|&&x| x == 5.0).count(), 8);
        assert_eq!(field[12 + 4], 5.0);
        // Out of the field, or of mismatched dimensions.
        assert!(Block::new(&[4, 5], &[3, 0], &[2, 5]).is_err());
        assert!(Block::new(&[4, 5], &[0], &[2, 5]).is_err());
        assert!(Block::new(&[1, 1, 1, 1], &[0; 4], &[1; 4]).is_err());
        assert!(Block::decode(&[2, 1]).is_err());
    }

    #[test]
    fn a_column_major_block_lands_where_its_program_sees_it() {
        // Fortran's f(3, 4), of which this rank holds columns 2 and 3
        // (1-based): in memory f(1,2), f(2,2), f(3,2), f(1,3), ... As C reads
        // it, a block of shape [2, 3] at [1, 0] of a [4, 3] field.
        let b = Block::new(&[4, 3], &[1, 0], &[2, 3]).unwrap();
        let data: Vec<f64> = (0..6).map(f64::from).collect();
        let mut field = vec![-1.0; 12];
        b.place_transposed(&mut field, &data);
        // The field is row-major in Fortran's order, [3, 4]: f(i, j) at
        // (i-1)*4 + (j-1). f(1,2) = 0, f(2,2) = 1, f(3,2) = 2, f(1,3) = 3.
        assert_eq!(
            (field[1], field[5], field[9], field[2]),
            (0.0, 1.0, 2.0, 3.0)
        );
        assert_eq!(field[11], -1.0, "column 4 is another rank's");
        assert_eq!(field.iter().filter(|&&x| x >= 0.0).count(), 6);
    }
}
