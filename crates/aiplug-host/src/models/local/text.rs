//! Turning token bytes into the text a stream may show: UTF-8 that a token
//! boundary splits is held until it is whole, and text that could be the
//! start of a stop string is held until it is known not to be one.

/// Collects token bytes and yields the longest complete UTF-8 prefix;
/// invalid bytes become U+FFFD.
#[derive(Debug, Default)]
pub(crate) struct Utf8Decoder {
    pending: Vec<u8>,
}

impl Utf8Decoder {
    /// Adds `bytes` and appends what is now decodable to `out`.
    pub(crate) fn push(&mut self, bytes: &[u8], out: &mut String) {
        self.pending.extend_from_slice(bytes);
        let mut start = 0;
        loop {
            match std::str::from_utf8(&self.pending[start..]) {
                Ok(text) => {
                    out.push_str(text);
                    self.pending.clear();
                    return;
                }
                Err(e) => {
                    let valid = start + e.valid_up_to();
                    // from_utf8 said these bytes are valid.
                    out.push_str(std::str::from_utf8(&self.pending[start..valid]).unwrap_or_default());
                    match e.error_len() {
                        // An incomplete sequence at the end: wait for more.
                        None => {
                            self.pending.drain(..valid);
                            return;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            start = valid + bad;
                        }
                    }
                }
            }
        }
    }

    /// Appends whatever is left (an incomplete sequence becomes U+FFFD).
    pub(crate) fn finish(&mut self, out: &mut String) {
        if !self.pending.is_empty() {
            out.push_str(&String::from_utf8_lossy(&self.pending));
            self.pending.clear();
        }
    }
}

/// Decides how much generated text may be shown, given stop strings.
#[derive(Debug)]
pub(crate) struct StopFilter {
    stops: Vec<String>,
    /// Text generated but not yet released.
    held: String,
}

/// What [`StopFilter::push`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Filtered {
    /// Text that may be shown now (possibly empty: it is being held).
    Text(String),
    /// A stop string appeared: the text before it, and generation ends.
    Stop(String),
}

impl StopFilter {
    /// A filter for `stops` (empty strings are ignored).
    pub(crate) fn new(stops: Vec<String>) -> StopFilter {
        StopFilter {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            held: String::new(),
        }
    }

    /// Adds newly decoded text.
    pub(crate) fn push(&mut self, text: &str) -> Filtered {
        if self.stops.is_empty() {
            return Filtered::Text(text.to_string());
        }
        self.held.push_str(text);
        // The earliest stop string wins. Nothing released earlier can be part
        // of one: a possible prefix is always held back (below).
        let first = self.stops.iter().filter_map(|s| self.held.find(s.as_str())).min();
        if let Some(at) = first {
            let before = self.held[..at].to_string();
            self.held.clear();
            return Filtered::Stop(before);
        }
        let keep = self.possible_prefix_len();
        let release = self.held.len() - keep;
        let out = self.held[..release].to_string();
        self.held.drain(..release);
        Filtered::Text(out)
    }

    /// The text still held back, released when generation ends otherwise.
    pub(crate) fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// Length of the longest suffix of `held` that is a proper prefix of a
    /// stop string (on a char boundary).
    fn possible_prefix_len(&self) -> usize {
        let mut best = 0;
        for stop in &self.stops {
            let max = stop.len().saturating_sub(1).min(self.held.len());
            for len in (best + 1..=max).rev() {
                let start = self.held.len() - len;
                if self.held.is_char_boundary(start) && stop.starts_with(&self.held[start..]) {
                    best = len;
                    break;
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multibyte_chars_split_across_tokens_come_out_whole() {
        let text = "né 日本 🎉!";
        let bytes = text.as_bytes();
        // Every split of the bytes into two-byte "tokens".
        let mut decoder = Utf8Decoder::default();
        let mut out = String::new();
        let mut seen = Vec::new();
        for chunk in bytes.chunks(2) {
            let before = out.len();
            decoder.push(chunk, &mut out);
            seen.push(out[before..].to_string());
        }
        decoder.finish(&mut out);
        assert_eq!(out, text);
        assert!(seen.iter().all(|s| std::str::from_utf8(s.as_bytes()).is_ok()));
        assert!(seen.contains(&String::new()), "an incomplete char was held back");
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut decoder = Utf8Decoder::default();
        let mut out = String::new();
        decoder.push(b"a\xffb\xe6", &mut out);
        assert_eq!(out, "a\u{fffd}b");
        decoder.finish(&mut out);
        assert_eq!(out, "a\u{fffd}b\u{fffd}");
    }

    #[test]
    fn a_stop_string_split_across_pushes_is_never_shown() {
        let mut filter = StopFilter::new(vec!["END".into(), "<|x|>".into()]);
        assert_eq!(filter.push("hello E"), Filtered::Text("hello ".into()));
        assert_eq!(filter.push("N"), Filtered::Text(String::new()));
        assert_eq!(filter.push("D and more"), Filtered::Stop("".into()));

        let mut filter = StopFilter::new(vec!["END".into()]);
        assert_eq!(filter.push("EN"), Filtered::Text(String::new()));
        assert_eq!(filter.push("Ex"), Filtered::Text("ENEx".into()));
        assert_eq!(filter.push("yEN"), Filtered::Text("y".into()));
        assert_eq!(filter.finish(), "EN");
    }

    #[test]
    fn the_earliest_stop_wins_and_no_stops_pass_everything() {
        let mut filter = StopFilter::new(vec!["world".into(), "o".into()]);
        assert_eq!(filter.push("hello world"), Filtered::Stop("hell".into()));
        let mut none = StopFilter::new(vec![String::new()]);
        assert_eq!(none.push("abc"), Filtered::Text("abc".into()));
    }

    #[test]
    fn multibyte_stop_prefixes_respect_char_boundaries() {
        let mut filter = StopFilter::new(vec!["日本語".into()]);
        assert_eq!(filter.push("x日本"), Filtered::Text("x".into()));
        assert_eq!(filter.push("人"), Filtered::Text("日本人".into()));
    }
}
