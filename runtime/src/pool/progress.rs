//! The progress bar of [`Maps::progress`](crate::Maps::progress): an `indicatif` bar on stderr
//! when the `progress` feature is on and stderr is a terminal; nothing otherwise.

/// A map's progress bar, or nothing.
pub(crate) struct ProgressBar {
    #[cfg(feature = "progress")]
    bar: Option<indicatif::ProgressBar>,
}

impl ProgressBar {
    /// A bar for `len` items (unknown: `None`) when `wanted`, the feature is on and stderr is
    /// a terminal.
    #[cfg_attr(not(feature = "progress"), allow(unused_variables))]
    pub(crate) fn new(wanted: bool, len: Option<u64>) -> Self {
        #[cfg(feature = "progress")]
        {
            use std::io::IsTerminal;
            let shown = wanted && std::io::stderr().is_terminal();
            let bar = shown.then(|| match len {
                Some(len) => indicatif::ProgressBar::new(len),
                None => indicatif::ProgressBar::no_length(),
            });
            Self { bar }
        }
        #[cfg(not(feature = "progress"))]
        Self {}
    }

    /// One more item is done.
    pub(crate) fn advance(&self) {
        #[cfg(feature = "progress")]
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }
}

impl Drop for ProgressBar {
    fn drop(&mut self) {
        #[cfg(feature = "progress")]
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
