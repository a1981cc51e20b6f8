//! Reading a column of a result row, with the store's error. A leaf: every query module uses it.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::Result;

pub(crate) fn get<'r, T>(row: &'r AnyRow, column: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    Ok(row.try_get(column)?)
}
