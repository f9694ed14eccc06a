//! `trace report --format xlsx`: one worksheet per section, a bold frozen
//! header row, figures as numbers and missing figures as empty cells. The
//! levels and group sheets carry every distribution figure as columns.

use std::path::Path;

use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};

use super::html::typed::{self, Cell, TypedTable};
use crate::model::Report;
use crate::{Error, Result};

/// The sheets, in workbook order.
pub fn tables(report: &Report) -> Vec<TypedTable> {
    vec![
        typed::levels(report, true),
        typed::errors(report),
        typed::finishes(report),
        typed::saturation(report),
        typed::verdicts(report),
        typed::rounds(report),
        typed::turns(report, true),
        typed::prompt_buckets(report, true),
        typed::timeline(report, true),
        typed::users(report, None).0,
        typed::by(report, true),
        typed::runs(report),
        typed::notes(report),
    ]
}

/// Write the workbook to `path`.
pub fn write(report: &Report, path: &Path) -> Result<()> {
    let fail = |e: XlsxError| Error::Xlsx {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    for t in tables(report) {
        let sheet = book.add_worksheet();
        fill(sheet, &t, &bold).map_err(fail)?;
    }
    book.save(path).map_err(fail)
}

fn fill(sheet: &mut Worksheet, t: &TypedTable, bold: &Format) -> Result<(), XlsxError> {
    sheet.set_name(t.name)?;
    for (c, h) in t.headers.iter().enumerate() {
        sheet.write_string_with_format(0, col(c)?, h, bold)?;
    }
    for (r, row) in t.rows.iter().enumerate() {
        let r = u32::try_from(r + 1).map_err(|_| XlsxError::RowColumnLimitError)?;
        for (c, value) in row.iter().enumerate() {
            write_cell(sheet, r, col(c)?, value)?;
        }
    }
    sheet.set_freeze_panes(1, 0)?;
    sheet.autofit();
    Ok(())
}

fn col(c: usize) -> Result<u16, XlsxError> {
    u16::try_from(c).map_err(|_| XlsxError::RowColumnLimitError)
}

/// Numbers as numbers; infinities (an unbounded `qps inf` level) as text,
/// which a spreadsheet cannot hold as a number; `None` as nothing.
fn write_cell(sheet: &mut Worksheet, r: u32, c: u16, value: &Cell) -> Result<(), XlsxError> {
    match value {
        Cell::Text(s) if s.is_empty() => {}
        Cell::Text(s) => {
            sheet.write_string(r, c, s)?;
        }
        Cell::Int(n) => {
            sheet.write_number(r, c, *n as f64)?;
        }
        Cell::Num(Some(v)) if v.is_finite() => {
            sheet.write_number(r, c, *v)?;
        }
        Cell::Num(Some(v)) => {
            sheet.write_string(r, c, crate::model::fmt_value(*v))?;
        }
        Cell::Bool(Some(b)) => {
            sheet.write_boolean(r, c, *b)?;
        }
        Cell::Num(None) | Cell::Bool(None) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests;
