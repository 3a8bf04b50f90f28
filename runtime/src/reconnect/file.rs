//! Files: reopened by path with the same options, at the offset the file had when its
//! recipe was last taken (when the process state was serialized).

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::reconnect::{Reconnect, ReconnectError, Secret, open_error};

/// How to open a [`File`] again.
///
/// There is no `truncate`: reopening must not destroy what the first open wrote. Truncate
/// before making the recipe if you need to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FileRecipe {
    /// The file's path; make it absolute if the child may run elsewhere.
    pub path: PathBuf,
    /// Open for writing as well as reading.
    pub write: bool,
    /// Writes go to the end.
    pub append: bool,
    /// Create the file if it does not exist.
    pub create: bool,
    /// Where reading and writing continue.
    pub offset: u64,
}

impl FileRecipe {
    /// Read-only, from the start.
    pub fn read(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            write: false,
            append: false,
            create: false,
            offset: 0,
        }
    }

    /// Read and write, created if missing, from the start.
    pub fn read_write(path: impl Into<PathBuf>) -> Self {
        Self {
            write: true,
            create: true,
            ..Self::read(path)
        }
    }

    /// Appending writes, created if missing.
    pub fn append(path: impl Into<PathBuf>) -> Self {
        Self {
            append: true,
            ..Self::read_write(path)
        }
    }

    /// The same recipe continuing at `offset`.
    pub fn at(mut self, offset: u64) -> Self {
        self.offset = offset;
        self
    }
}

impl Reconnect for File {
    type Recipe = FileRecipe;
    const KIND: &'static str = "file";

    fn open(recipe: &FileRecipe, _: Option<&Secret>) -> Result<Self, ReconnectError> {
        let target = recipe.path.display();
        let mut file = OpenOptions::new()
            .read(true)
            .write(recipe.write && !recipe.append)
            .append(recipe.append)
            .create(recipe.create)
            .open(&recipe.path)
            .map_err(|e| open_error(Self::KIND, &target, e))?;
        if !recipe.append {
            file.seek(SeekFrom::Start(recipe.offset))
                .map_err(|e| open_error(Self::KIND, &target, e))?;
        }
        Ok(file)
    }

    fn current_recipe(&self, opened_with: &FileRecipe) -> FileRecipe {
        // A file whose position cannot be read keeps the offset it was opened at.
        let offset = (&*self).stream_position().unwrap_or(opened_with.offset);
        opened_with.clone().at(offset)
    }
}
