//! The latency values of the measured requests, kept once for every
//! section that takes their distributions.
//!
//! The per-level, per-turn, per-prompt-bucket, per-user and `--by` tables
//! all report TTFT, TPOT and E2E of the same requests. Instead of a buffer
//! of values per group in each table (five copies), the values are kept
//! here once, one row per measured request in the order read, and each
//! table keeps only the group of every row (`Groups`, 4 bytes a row). When
//! a table finishes, the values of one metric are sorted into their groups
//! (a counting sort, which keeps each group's values in the order read, so
//! the sums are those of a buffer per group) and the distributions taken.

use polars::prelude::*;
use rayon::prelude::*;

use super::stats::{dist_of_slice, is_ok, measured, only};
use crate::error::{PolarsContext, Result};
use crate::model::Dist;

/// A latency column of the store (its index in `Store::columns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// TTFT of ok requests.
    Ttft,
    /// TPOT of ok requests.
    Tpot,
    /// E2E of ok requests.
    E2e,
    /// Lateness of every measured request.
    Lateness,
}

impl Value {
    /// Every column, in index order.
    const ALL: [Value; 4] = [Value::Ttft, Value::Tpot, Value::E2e, Value::Lateness];

    fn expr(self) -> Expr {
        let v = match self {
            Value::Ttft => only(is_ok(), col("ttft_ms")),
            Value::Tpot => only(is_ok(), col("tpot_ms")),
            Value::E2e => only(is_ok(), col("e2e_ms")),
            Value::Lateness => col("lateness_ms"),
        };
        v.cast(DataType::Float64)
    }

    fn name(self) -> &'static str {
        match self {
            Value::Ttft => "ttft",
            Value::Tpot => "tpot",
            Value::E2e => "e2e",
            Value::Lateness => "lateness",
        }
    }
}

/// The values of every measured request, NaN where null (a failed
/// request's TTFT).
#[derive(Debug, Default)]
pub struct Store {
    columns: [Vec<f64>; 4],
}

/// No group: the row is not in the table (a request without a user in the
/// per-user table).
pub const NO_GROUP: u32 = u32::MAX;

impl Store {
    /// Append the measured requests of a batch, in order.
    pub fn add(&mut self, batch: &DataFrame) -> Result<()> {
        let values = batch
            .clone()
            .lazy()
            .filter(measured())
            .select(
                Value::ALL
                    .iter()
                    .map(|v| v.expr().alias(v.name()))
                    .collect::<Vec<_>>(),
            )
            .collect()
            .ctx(|| "selecting the latency values".to_string())?;
        for (v, column) in Value::ALL.iter().zip(self.columns.iter_mut()) {
            let s = values
                .column(v.name())
                .ctx(|| "the latency values".to_string())?
                .as_materialized_series()
                .rechunk();
            let ca = s.f64().ctx(|| "the latency values".to_string())?;
            column.reserve(ca.len());
            for arr in ca.downcast_iter() {
                match arr.validity().filter(|b| b.unset_bits() > 0) {
                    None => column.extend_from_slice(arr.values()),
                    Some(valid) => column.extend(
                        arr.values()
                            .iter()
                            .zip(valid.iter())
                            .map(|(x, ok)| if ok { *x } else { f64::NAN }),
                    ),
                }
            }
        }
        Ok(())
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.columns[0].len()
    }

    /// The distribution of `value` in each of `n_groups` groups, given the
    /// group of every row (`NO_GROUP` for none).
    pub fn dists(&self, value: Value, groups: &[u32], n_groups: usize) -> Vec<Dist> {
        let column = &self.columns[value as usize];
        let mut counts = vec![0usize; n_groups];
        for (x, &g) in column.iter().zip(groups) {
            if g != NO_GROUP && !x.is_nan() {
                counts[g as usize] += 1;
            }
        }
        let mut next = Vec::with_capacity(n_groups);
        let mut total = 0;
        for c in &counts {
            next.push(total);
            total += c;
        }
        let mut sorted = vec![0f64; total];
        for (x, &g) in column.iter().zip(groups) {
            if g != NO_GROUP && !x.is_nan() {
                let at = &mut next[g as usize];
                sorted[*at] = *x;
                *at += 1;
            }
        }
        let mut slices = Vec::with_capacity(n_groups);
        let mut rest = sorted.as_mut_slice();
        for c in counts {
            let (one, after) = rest.split_at_mut(c);
            slices.push(one);
            rest = after;
        }
        slices.into_par_iter().map(dist_of_slice).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dists_split_the_values_by_group_and_skip_nulls() {
        let mut store = Store::default();
        store.columns[0] = vec![1.0, 10.0, 2.0, f64::NAN, 20.0, 3.0, 99.0];
        let groups = [0, 1, 0, 1, 1, 0, NO_GROUP];
        let d = store.dists(Value::Ttft, &groups, 3);
        assert_eq!(d.len(), 3);
        assert_eq!((d[0].count, d[0].p50, d[0].max), (3, Some(2.0), Some(3.0)));
        assert_eq!((d[1].count, d[1].mean), (2, Some(15.0)));
        assert_eq!(d[2], Dist::default());
        assert_eq!(store.len(), 7);
    }
}
