//! Grouped distributions without grouped quantiles.
//!
//! Polars takes a grouped quantile by sorting each group once per
//! percentile, and a filtered aggregation group by group. Here Polars
//! computes the values elementwise and groups the rows, a batch of the
//! requests at a time; sums, counts and extremes are accumulated in one
//! pass, and each metric's values gathered into one buffer per group,
//! whose distribution `stats::dist_of` takes by selection, the groups'
//! buffers in parallel. The latency values every table reports (TTFT,
//! TPOT, E2E, lateness) are not gathered per table: they are kept once in
//! the `store::Store`, and a table keeps only the group of every row.

use std::collections::HashMap;

use polars::prelude::*;
use rayon::prelude::*;

use super::frames::Levels;
use super::stats::{Blocks, Frame, dist_of};
use super::store::{NO_GROUP, Store, Value};
use crate::error::{PolarsContext, Result};
use crate::model::Dist;

/// A metric whose distribution is taken per group.
pub enum Metric {
    /// Values computed from the rows, null where a row does not count,
    /// gathered into a buffer per group.
    Values { name: &'static str, values: Expr },
    /// A column of the [`Store`], which holds it once for every section.
    /// Only for sections whose rows are the measured requests, in order
    /// (`prepare` filters `measured()` and nothing else; `keep` leaves
    /// rows out).
    Stored { name: &'static str, value: Value },
}

impl Metric {
    pub fn new(name: &'static str, values: Expr) -> Self {
        Self::Values { name, values }
    }

    pub fn stored(name: &'static str, value: Value) -> Self {
        Self::Stored { name, value }
    }
}

/// A per-group aggregation of an elementwise expression; nulls are
/// skipped, as in SQL.
pub enum Agg {
    /// Rows in the group.
    Len,
    /// Sum (0 when every value is null).
    Sum(Expr),
    Min(Expr),
    Max(Expr),
    Mean(Expr),
}

/// The aggregations of every group, one row each beside the group's key
/// columns, and the distributions of the metrics, by name.
pub struct Grouped {
    pub frame: Frame,
    dists: Vec<HashMap<&'static str, Dist>>,
}

impl Grouped {
    /// The distribution of `metric` in the group of row `row`.
    pub fn dist(&self, metric: &str, row: usize) -> Dist {
        self.dists
            .get(row)
            .and_then(|d| d.get(metric))
            .cloned()
            .unwrap_or_default()
    }
}

/// Running aggregates of the groups seen so far.
#[derive(Default)]
struct Acc {
    sum: Vec<f64>,
    count: Vec<u64>,
    min: Vec<f64>,
    max: Vec<f64>,
}

impl Acc {
    fn add_group(&mut self) {
        self.sum.push(0.0);
        self.count.push(0);
        self.min.push(f64::INFINITY);
        self.max.push(f64::NEG_INFINITY);
    }

    fn value(&self, kind: Kind, g: usize) -> Option<f64> {
        match kind {
            Kind::Len => Some(self.count[g] as f64),
            Kind::Sum => Some(self.sum[g]),
            _ if self.count[g] == 0 => None,
            Kind::Min => Some(self.min[g]),
            Kind::Max => Some(self.max[g]),
            Kind::Mean => Some(self.sum[g] / self.count[g] as f64),
        }
    }
}

/// What a query keeps of a batch of requests and adds to it.
pub type Prepare = Box<dyn Fn(LazyFrame) -> LazyFrame + Send + Sync>;

/// Groups the rows that `prepare` keeps by the columns `by` (which
/// `prepare` may add), with the aggregations `aggs` (output columns of
/// those names, Float64) and the distribution of every metric, fed a
/// batch of requests at a time. For each batch Polars computes the values
/// elementwise and groups the rows; the aggregates are accumulated here,
/// and every metric's values gathered into one buffer per group.
pub struct GroupedAcc {
    what: String,
    prepare: Prepare,
    by: Vec<String>,
    select: Vec<Expr>,
    kinds: Vec<(&'static str, Kind, String)>,
    names: Vec<&'static str>,
    stored: Vec<(&'static str, Value)>,
    keep: bool,
    index: HashMap<String, usize>,
    key_rows: Option<DataFrame>,
    accs: Vec<Acc>,
    buffers: Vec<Vec<Blocks<f64>>>,
    /// With stored metrics: the group of every measured row, `NO_GROUP`
    /// for rows `keep` leaves out.
    rows: Vec<u32>,
}

impl GroupedAcc {
    pub fn new(
        what: &str,
        prepare: Prepare,
        by: &[&str],
        aggs: Vec<(&'static str, Agg)>,
        metrics: Vec<Metric>,
    ) -> Self {
        let mut select: Vec<Expr> = by.iter().map(|c| col(*c)).collect();
        let mut kinds = Vec::with_capacity(aggs.len());
        for (i, (name, agg)) in aggs.into_iter().enumerate() {
            let (kind, e) = match agg {
                Agg::Len => (Kind::Len, None),
                Agg::Sum(e) => (Kind::Sum, Some(e)),
                Agg::Min(e) => (Kind::Min, Some(e)),
                Agg::Max(e) => (Kind::Max, Some(e)),
                Agg::Mean(e) => (Kind::Mean, Some(e)),
            };
            if let Some(e) = e {
                select.push(e.cast(DataType::Float64).alias(format!("__a{i}")));
            }
            kinds.push((name, kind, format!("__a{i}")));
        }
        let mut names: Vec<&'static str> = Vec::new();
        let mut stored = Vec::new();
        for m in metrics {
            match m {
                Metric::Values { name, values } => {
                    select.push(
                        values
                            .cast(DataType::Float64)
                            .alias(format!("__m{}", names.len())),
                    );
                    names.push(name);
                }
                Metric::Stored { name, value } => stored.push((name, value)),
            }
        }
        let accs = kinds.iter().map(|_| Acc::default()).collect();
        Self {
            what: what.to_string(),
            prepare,
            by: by.iter().map(|c| c.to_string()).collect(),
            select,
            kinds,
            names,
            stored,
            keep: false,
            index: HashMap::new(),
            key_rows: None,
            accs,
            buffers: Vec::new(),
            rows: Vec::new(),
        }
    }

    /// Leave out the rows where `keep` is not true: they are in no group.
    /// (A filter in `prepare` would do the same, but would break the
    /// rows' alignment with the [`Store`].)
    pub fn keep(mut self, keep: Expr) -> Self {
        self.select.push(keep.fill_null(lit(false)).alias("__keep"));
        self.keep = true;
        self
    }

    /// Add a batch of requests.
    pub fn add(&mut self, batch: &DataFrame) -> Result<()> {
        let what = self.what.as_str();
        let values = (self.prepare)(batch.clone().lazy())
            .select(self.select.clone())
            .collect()
            .ctx(|| format!("computing {what}"))?;
        if values.height() == 0 {
            return Ok(());
        }
        let gb = values
            .group_by(self.by.iter().map(String::as_str))
            .ctx(|| format!("grouping {what}"))?;
        let keys = DataFrame::new_infer_height(gb.keys()).ctx(|| format!("keys of {what}"))?;
        let kept = if self.keep {
            let c = values
                .column("__keep")
                .ctx(|| format!("values of {what}"))?
                .as_materialized_series()
                .rechunk();
            let mask = c.bool().ctx(|| format!("values of {what}"))?;
            Some(mask.iter().map(|k| k == Some(true)).collect::<Vec<bool>>())
        } else {
            None
        };
        let mut group_of = vec![NO_GROUP; values.height()];
        for (local, group) in gb.get_groups().iter().enumerate() {
            if let Some(kept) = kept.as_ref() {
                let any = match group {
                    GroupsIndicator::Idx((_, idx)) => idx.iter().any(|&i| kept[i as usize]),
                    GroupsIndicator::Slice([first, len]) => {
                        kept[first as usize..(first + len) as usize].contains(&true)
                    }
                };
                if !any {
                    continue;
                }
            }
            let label = key_label(&keys, &self.by, local)?;
            let g = match self.index.get(&label) {
                Some(g) => *g,
                None => {
                    let g = self.buffers.len();
                    self.index.insert(label, g);
                    let row = keys.slice(local as i64, 1);
                    match self.key_rows.as_mut() {
                        Some(k) => {
                            k.vstack_mut(&row).ctx(|| format!("keys of {what}"))?;
                        }
                        None => self.key_rows = Some(row),
                    }
                    self.accs.iter_mut().for_each(Acc::add_group);
                    self.buffers
                        .push(self.names.iter().map(|_| Blocks::default()).collect());
                    g
                }
            };
            let g32 = u32::try_from(g).unwrap_or(u32::MAX);
            match group {
                GroupsIndicator::Idx((_, idx)) => {
                    for &i in idx.iter() {
                        group_of[i as usize] = g32;
                    }
                }
                GroupsIndicator::Slice([first, len]) => {
                    group_of[first as usize..(first + len) as usize].fill(g32);
                }
            }
        }
        if let Some(kept) = kept {
            for (g, k) in group_of.iter_mut().zip(kept) {
                if !k {
                    *g = NO_GROUP;
                }
            }
        }
        for ((_, kind, source), acc) in self.kinds.iter().zip(self.accs.iter_mut()) {
            if *kind == Kind::Len {
                for &g in group_of.iter().filter(|g| **g != NO_GROUP) {
                    acc.count[g as usize] += 1;
                }
                continue;
            }
            let ca = f64_column(&values, source, what)?;
            let Acc {
                sum,
                count,
                min,
                max,
            } = acc;
            match kind {
                Kind::Sum | Kind::Mean => each_grouped(&ca, &group_of, |g, v| {
                    count[g] += 1;
                    sum[g] += v;
                }),
                Kind::Min => each_grouped(&ca, &group_of, |g, v| {
                    count[g] += 1;
                    min[g] = min[g].min(v);
                }),
                Kind::Max => each_grouped(&ca, &group_of, |g, v| {
                    count[g] += 1;
                    max[g] = max[g].max(v);
                }),
                Kind::Len => {}
            }
        }
        for (m, _) in self.names.iter().enumerate() {
            let ca = f64_column(&values, &format!("__m{m}"), what)?;
            let buffers = &mut self.buffers;
            each_grouped(&ca, &group_of, |g, v| buffers[g][m].push(v));
        }
        if !self.stored.is_empty() {
            self.rows.extend_from_slice(&group_of);
        }
        Ok(())
    }

    /// The groups' aggregates and distributions; a group key of
    /// `frames::LEVEL` comes back as the four level key columns. `store`
    /// holds the values of the stored metrics.
    pub fn finish(self, levels: &Levels, store: &Store) -> Result<Grouped> {
        let what = self.what.as_str();
        let n_groups = self.buffers.len();
        if !self.stored.is_empty() && self.rows.len() != store.len() {
            return Err(crate::error::Error::Internal(format!(
                "{what}: {} rows grouped, {} values stored",
                self.rows.len(),
                store.len()
            )));
        }
        let mut columns: Vec<Column> = match self.key_rows {
            Some(k) => levels.expand(k)?.columns().to_vec(),
            None => Vec::new(),
        };
        for ((name, kind, _), acc) in self.kinds.iter().zip(&self.accs) {
            let ca: Float64Chunked = (0..n_groups).map(|g| acc.value(*kind, g)).collect();
            columns.push(ca.with_name((*name).into()).into_series().into());
        }
        let frame = if n_groups == 0 {
            Frame::from_df(DataFrame::empty())
        } else {
            Frame::from_df(
                DataFrame::new_infer_height(columns).ctx(|| format!("assembling {what}"))?,
            )
        };
        let names = self.names;
        let mut dists: Vec<HashMap<&'static str, Dist>> = self
            .buffers
            .into_par_iter()
            .map(|per_metric| {
                names
                    .iter()
                    .copied()
                    .zip(per_metric.into_iter().map(|b| dist_of(b.into_vec())))
                    .collect()
            })
            .collect();
        for (name, value) in &self.stored {
            for (g, d) in store
                .dists(*value, &self.rows, n_groups)
                .into_iter()
                .enumerate()
            {
                dists[g].insert(name, d);
            }
        }
        Ok(Grouped { frame, dists })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Len,
    Sum,
    Min,
    Max,
    Mean,
}

/// Calls `f` with the group (from `group_of`, by row) and the value of
/// every non-null value of `ca` whose row is in a group, in row order.
fn each_grouped(ca: &Float64Chunked, group_of: &[u32], mut f: impl FnMut(usize, f64)) {
    each_value(ca, |row, v| {
        let g = group_of[row];
        if g != NO_GROUP {
            f(g as usize, v);
        }
    });
}

/// Calls `f` with the row number (from 0) and value of every non-null
/// value of `ca`, in row order, straight from the arrays' value slices
/// (a `ChunkedArray`'s own iterator is dynamically dispatched, one call a
/// value).
fn each_value<T: PolarsNumericType>(ca: &ChunkedArray<T>, mut f: impl FnMut(usize, T::Native)) {
    let mut row = 0;
    for arr in ca.downcast_iter() {
        let values = arr.values().as_slice();
        match arr.validity().filter(|v| v.unset_bits() > 0) {
            None => {
                for (i, &v) in values.iter().enumerate() {
                    f(row + i, v);
                }
            }
            Some(valid) => {
                for (i, (&v, ok)) in values.iter().zip(valid.iter()).enumerate() {
                    if ok {
                        f(row + i, v);
                    }
                }
            }
        }
        row += values.len();
    }
}

fn f64_column(values: &DataFrame, name: &str, what: &str) -> Result<Float64Chunked> {
    let s = values
        .column(name)
        .ctx(|| format!("values of {what}"))?
        .as_materialized_series()
        .rechunk();
    Ok(s.f64().ctx(|| format!("values of {what}"))?.clone())
}

/// The key values of row `row` as one string, the same for equal keys in
/// any slice.
fn key_label(df: &DataFrame, by: &[String], row: usize) -> Result<String> {
    let mut label = String::new();
    for c in by {
        let v = df
            .column(c.as_str())
            .and_then(|col| col.get(row))
            .ctx(|| format!("reading key column {c}"))?;
        match v {
            AnyValue::Null => label.push('\u{0}'),
            AnyValue::Float64(x) => label.push_str(&format!("f{}", x.to_bits())),
            AnyValue::Float32(x) => label.push_str(&format!("f{}", x.to_bits())),
            other => match other.get_str() {
                Some(s) => label.push_str(s),
                None => label.push_str(&format!("{other:?}")),
            },
        }
        label.push('\u{1f}');
    }
    Ok(label)
}
