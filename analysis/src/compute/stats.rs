//! Building blocks of the queries: distribution aggregations, the level
//! key, and reading typed values back out of a collected `DataFrame`.

use std::cell::RefCell;
use std::collections::HashMap;

use polars::prelude::*;

use crate::error::{PolarsContext, Result};
use crate::model::{Dist, LevelKey, PERCENTILES};

/// Columns that identify a level.
pub const KEY_COLUMNS: [&str; 4] = ["run_id", "load_mode", "load_value", "round"];

pub fn key_exprs() -> Vec<Expr> {
    KEY_COLUMNS.iter().map(|c| col(*c)).collect()
}

/// `status = 'ok'`.
pub fn is_ok() -> Expr {
    col("status").eq(lit("ok"))
}

/// Rows outside warm-up.
pub fn measured() -> Expr {
    col("warmup").not()
}

/// Aggregations of one metric, aliased `{name}__{stat}`: count, mean,
/// sample std, min, the `PERCENTILES` (linear), max.
pub fn dist_exprs(name: &str, values: Expr) -> Vec<Expr> {
    let v = values.cast(DataType::Float64);
    let mut out = vec![
        v.clone().count().alias(format!("{name}__count")),
        v.clone().mean().alias(format!("{name}__mean")),
        v.clone().std(1).alias(format!("{name}__std")),
        v.clone().min().alias(format!("{name}__min")),
        v.clone().max().alias(format!("{name}__max")),
    ];
    for p in PERCENTILES {
        out.push(
            v.clone()
                .quantile(lit(p / 100.0), QuantileMethod::Linear)
                .alias(format!("{name}__p{}", p as u32)),
        );
    }
    out
}

/// The `itl_ms` list column, for `LazyFrame::explode`.
pub fn itl_selector() -> Selector {
    cols(["itl_ms"])
}

/// One percentile of a metric, aliased as given.
pub fn quantile(values: Expr, p: f64, alias: &str) -> Expr {
    values
        .cast(DataType::Float64)
        .quantile(lit(p), QuantileMethod::Linear)
        .alias(alias)
}

/// Typed access to a collected frame's cells.
pub struct Frame {
    df: DataFrame,
    /// Columns already cast, by `name/dtype`.
    cache: RefCell<HashMap<String, Series>>,
}

impl Frame {
    pub fn collect(lf: LazyFrame, what: &str) -> Result<Self> {
        let df = lf.collect().ctx(|| format!("computing {what}"))?;
        Ok(Self::from_df(df))
    }

    pub fn from_df(df: DataFrame) -> Self {
        Self {
            df,
            cache: RefCell::new(HashMap::new()),
        }
    }

    pub fn into_df(self) -> DataFrame {
        self.df
    }

    pub fn height(&self) -> usize {
        self.df.height()
    }

    pub fn has(&self, name: &str) -> bool {
        self.df.get_column_index(name).is_some()
    }

    fn series(&self, name: &str, dtype: &DataType) -> Result<Series> {
        let cache_key = format!("{name}/{dtype}");
        if let Some(s) = self.cache.borrow().get(&cache_key) {
            return Ok(s.clone());
        }
        let s = self.cast(name, dtype)?;
        self.cache.borrow_mut().insert(cache_key, s.clone());
        Ok(s)
    }

    fn cast(&self, name: &str, dtype: &DataType) -> Result<Series> {
        let c = self
            .df
            .column(name)
            .ctx(|| format!("reading column {name}"))?;
        c.as_materialized_series()
            .cast(dtype)
            .ctx(|| format!("reading column {name} as {dtype}"))
    }

    /// A float cell; NaN and null are `None`.
    pub fn f64(&self, name: &str, row: usize) -> Result<Option<f64>> {
        let s = self.series(name, &DataType::Float64)?;
        let v = s.f64().ctx(|| format!("column {name}"))?.get(row);
        Ok(v.filter(|x| !x.is_nan()))
    }

    /// A float cell kept as is (infinity included); null is `None`.
    pub fn f64_raw(&self, name: &str, row: usize) -> Result<Option<f64>> {
        let s = self.series(name, &DataType::Float64)?;
        Ok(s.f64().ctx(|| format!("column {name}"))?.get(row))
    }

    pub fn u64(&self, name: &str, row: usize) -> Result<u64> {
        let s = self.series(name, &DataType::UInt64)?;
        Ok(s.u64()
            .ctx(|| format!("column {name}"))?
            .get(row)
            .unwrap_or(0))
    }

    pub fn opt_u64(&self, name: &str, row: usize) -> Result<Option<u64>> {
        let s = self.series(name, &DataType::UInt64)?;
        Ok(s.u64().ctx(|| format!("column {name}"))?.get(row))
    }

    pub fn str(&self, name: &str, row: usize) -> Result<Option<String>> {
        let s = self.series(name, &DataType::String)?;
        Ok(s.str()
            .ctx(|| format!("column {name}"))?
            .get(row)
            .map(str::to_string))
    }

    pub fn key(&self, row: usize) -> Result<LevelKey> {
        Ok(LevelKey {
            run_id: self.str("run_id", row)?.unwrap_or_default(),
            load_mode: self.str("load_mode", row)?.unwrap_or_default(),
            load_value: self.f64_raw("load_value", row)?.unwrap_or(f64::NAN),
            round: u32::try_from(self.u64("round", row)?).unwrap_or(u32::MAX),
        })
    }

    pub fn dist(&self, name: &str, row: usize) -> Result<Dist> {
        let get = |stat: &str| self.f64(&format!("{name}__{stat}"), row);
        Ok(Dist {
            count: self.u64(&format!("{name}__count"), row)?,
            mean: get("mean")?,
            std: get("std")?,
            min: get("min")?,
            p50: get("p50")?,
            p90: get("p90")?,
            p95: get("p95")?,
            p99: get("p99")?,
            max: get("max")?,
        })
    }
}
