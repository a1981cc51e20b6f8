//! One direction of a TCP connection turned back into a byte stream.
//!
//! Segments may arrive out of order, twice, or overlapping; the first copy of any byte wins (what a
//! receiver that already acknowledged it would keep). Bytes that never arrive become a [`Chunk::Gap`]
//! of known length, so the consumer can stay in step with record boundaries across a loss. Memory is
//! bounded per direction and, through [`MemoryBudget`], across all flows: past a cap the reassembler
//! stops waiting for the missing bytes and reports them as a gap.

use std::collections::BTreeMap;

/// What the reassembler hands on, in stream order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunk<'a> {
    Data(&'a [u8]),
    /// This many bytes of the stream are lost.
    Gap(u64),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct ReassemblyLimits {
    /// Out-of-order bytes held for one direction.
    pub max_held_bytes: usize,
    /// Out-of-order pieces held for one direction (many tiny segments cost more than their bytes).
    pub max_held_segments: usize,
}

/// Bytes held by every buffer of a file's analysis, against one overall limit.
#[derive(Debug)]
pub(crate) struct MemoryBudget {
    pub used: usize,
    pub limit: usize,
    pub peak: usize,
}

impl MemoryBudget {
    pub fn new(limit: usize) -> Self {
        MemoryBudget { used: 0, limit, peak: 0 }
    }

    pub fn take(&mut self, n: usize) {
        self.used += n;
        self.peak = self.peak.max(self.used);
    }

    pub fn release(&mut self, n: usize) {
        self.used = self.used.saturating_sub(n);
    }

    pub fn exceeded(&self) -> bool {
        self.used > self.limit
    }
}

#[derive(Debug)]
enum Held {
    Data(Vec<u8>),
    /// Bytes known to exist (a snaplen-cut segment) but not captured.
    Hole(u64),
}

impl Held {
    fn len(&self) -> u64 {
        match self {
            Held::Data(d) => d.len() as u64,
            Held::Hole(n) => *n,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Reassembler {
    started: bool,
    /// Sequence number of stream offset 0.
    base: u32,
    /// Offset of the next byte to hand on.
    next: u64,
    held: BTreeMap<u64, Held>,
    held_bytes: usize,
    fin_at: Option<u64>,
    pub gaps: u64,
    pub gap_bytes: u64,
}

impl Reassembler {
    pub fn new() -> Self {
        Reassembler::default()
    }

    pub fn is_started(&self) -> bool {
        self.started
    }

    #[cfg(test)]
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// True once every byte up to the FIN has been handed on.
    pub fn is_finished(&self) -> bool {
        self.fin_at.is_some_and(|f| self.next >= f)
    }

    pub fn on_syn(&mut self, seq: u32) {
        if !self.started {
            self.started = true;
            self.base = seq.wrapping_add(1);
            self.next = 0;
        }
    }

    /// Stream offset of `seq`, unwrapped around the next expected byte (valid within ±2 GiB of it).
    fn offset_of(&self, seq: u32) -> i64 {
        let expected = self.base.wrapping_add(self.next as u32);
        self.next as i64 + i64::from(seq.wrapping_sub(expected) as i32)
    }

    /// Takes one segment: `payload` captured bytes starting at `seq`, followed by `missing` bytes the
    /// capture cut off.
    #[allow(clippy::too_many_arguments)]
    pub fn segment(
        &mut self,
        seq: u32,
        payload: &[u8],
        missing: u32,
        fin: bool,
        limits: &ReassemblyLimits,
        budget: &mut MemoryBudget,
        out: &mut dyn FnMut(Chunk<'_>),
    ) {
        if !self.started {
            // No SYN seen: the stream starts at the first segment we meet.
            self.started = true;
            self.base = seq;
            self.next = 0;
        }
        let offset = self.offset_of(seq);
        let total = payload.len() as u64 + u64::from(missing);
        if fin && self.fin_at.is_none() {
            let end = offset.saturating_add(total as i64);
            if end >= 0 {
                self.fin_at = Some(end as u64);
            }
        }
        if total == 0 {
            return;
        }
        // Drop what lies before the stream's start.
        let (start, data, hole) = if offset < 0 {
            let cut = offset.unsigned_abs();
            if cut >= total {
                return;
            }
            if cut >= payload.len() as u64 {
                (0u64, &payload[payload.len()..], total - cut)
            } else {
                (0u64, &payload[cut as usize..], u64::from(missing))
            }
        } else {
            (offset as u64, payload, u64::from(missing))
        };
        let data_end = start + data.len() as u64;
        let end = data_end + hole;
        if end <= self.next {
            return; // a retransmission of bytes already handed on
        }
        if start <= self.next {
            // In order. Hand on directly what no held (earlier-arrived) piece already covers.
            let limit = self.held.keys().next().map_or(end, |&first| first.min(end));
            if self.next < data_end.min(limit) {
                let from = (self.next - start) as usize;
                let to = (data_end.min(limit) - start) as usize;
                out(Chunk::Data(&data[from..to]));
                self.next = start + to as u64;
            }
            if self.next >= data_end && self.next < limit {
                let n = limit - self.next;
                self.record_gap(n);
                out(Chunk::Gap(n));
                self.next = limit;
            }
            if self.next < end {
                let rest = if self.next < data_end { &data[(self.next - start) as usize..] } else { &data[data.len()..] };
                let rest_start = self.next;
                let rest_hole = end - rest_start - rest.len() as u64;
                self.hold(rest_start, rest, rest_hole, budget);
            }
            self.drain(budget, out);
        } else {
            self.hold(start, data, hole, budget);
        }
        while !self.held.is_empty()
            && (self.held_bytes > limits.max_held_bytes || self.held.len() > limits.max_held_segments || budget.exceeded())
        {
            self.skip_to_held(budget, out);
        }
    }

    /// Gives up on missing bytes: everything held is handed on, holes as gaps. Used when the
    /// connection ends or expires.
    pub fn flush(&mut self, budget: &mut MemoryBudget, out: &mut dyn FnMut(Chunk<'_>)) {
        while !self.held.is_empty() {
            self.skip_to_held(budget, out);
        }
    }

    /// Releases held memory without handing anything on (the consumer lost interest).
    pub fn discard(&mut self, budget: &mut MemoryBudget) {
        budget.release(self.held_bytes);
        self.held_bytes = 0;
        self.held.clear();
    }

    fn record_gap(&mut self, n: u64) {
        self.gaps += 1;
        self.gap_bytes += n;
    }

    fn skip_to_held(&mut self, budget: &mut MemoryBudget, out: &mut dyn FnMut(Chunk<'_>)) {
        if let Some(&first) = self.held.keys().next() {
            if first > self.next {
                let n = first - self.next;
                self.record_gap(n);
                out(Chunk::Gap(n));
                self.next = first;
            }
        }
        self.drain(budget, out);
    }

    /// Hands on held pieces that are now in order.
    fn drain(&mut self, budget: &mut MemoryBudget, out: &mut dyn FnMut(Chunk<'_>)) {
        while let Some(entry) = self.held.first_entry() {
            let start = *entry.key();
            if start > self.next {
                break;
            }
            let piece = entry.remove();
            if let Held::Data(d) = &piece {
                self.held_bytes -= d.len();
                budget.release(d.len());
            }
            let end = start + piece.len();
            if end <= self.next {
                continue;
            }
            let skip = self.next - start;
            match &piece {
                Held::Data(d) => out(Chunk::Data(&d[skip as usize..])),
                Held::Hole(_) => {
                    self.record_gap(end - self.next);
                    out(Chunk::Gap(end - self.next));
                }
            }
            self.next = end;
        }
    }

    /// Stores the parts of `[start, start+data.len()+hole)` that no held piece covers yet.
    fn hold(&mut self, start: u64, data: &[u8], hole: u64, budget: &mut MemoryBudget) {
        let data_end = start + data.len() as u64;
        for (s, e) in self.uncovered(start, data_end) {
            let piece = data[(s - start) as usize..(e - start) as usize].to_vec();
            self.held_bytes += piece.len();
            budget.take(piece.len());
            self.held.insert(s, Held::Data(piece));
        }
        for (s, e) in self.uncovered(data_end, data_end + hole) {
            self.held.insert(s, Held::Hole(e - s));
        }
    }

    fn uncovered(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        if start >= end {
            return Vec::new();
        }
        let mut covered = Vec::new();
        for (&k, piece) in self.held.range(..end).rev() {
            let k_end = k + piece.len();
            if k_end <= start {
                break;
            }
            covered.push((k, k_end));
        }
        covered.reverse();
        let mut out = Vec::new();
        let mut cursor = start;
        for (k, k_end) in covered {
            if cursor < k {
                out.push((cursor, k));
            }
            cursor = cursor.max(k_end);
        }
        if cursor < end {
            out.push((cursor, end));
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BIG: ReassemblyLimits = ReassemblyLimits { max_held_bytes: usize::MAX, max_held_segments: usize::MAX };

    /// Output as `Some(byte)` per stream byte and `None` per lost byte.
    fn run(segments: &[(u32, Vec<u8>, u32)], limits: ReassemblyLimits, syn: Option<u32>) -> (Vec<Option<u8>>, usize) {
        let mut r = Reassembler::new();
        let mut budget = MemoryBudget::new(usize::MAX / 2);
        let mut out = Vec::new();
        let mut peak_held = 0;
        if let Some(seq) = syn {
            r.on_syn(seq);
        }
        let mut sink = |c: Chunk<'_>| match c {
            Chunk::Data(d) => out.extend(d.iter().map(|b| Some(*b))),
            Chunk::Gap(n) => out.extend(std::iter::repeat_n(None, n as usize)),
        };
        for (seq, data, missing) in segments {
            r.segment(*seq, data, *missing, false, &limits, &mut budget, &mut sink);
            peak_held = peak_held.max(r.held_bytes());
        }
        r.flush(&mut budget, &mut sink);
        assert_eq!(budget.used, 0, "budget must be returned");
        (out, peak_held)
    }

    #[test]
    fn in_order_out_of_order_and_duplicates() {
        let isn = 1000;
        let segs = vec![
            (isn + 1, b"hello ".to_vec(), 0),
            (isn + 13, b"!".to_vec(), 0),
            (isn + 7, b"world".to_vec(), 0),
            (isn + 1, b"HELLO ".to_vec(), 0),
            (isn + 12, b"?".to_vec(), 0),
        ];
        let (out, _) = run(&segs, BIG, Some(isn));
        let bytes: Vec<u8> = out.into_iter().map(|b| b.unwrap()).collect();
        assert_eq!(bytes, b"hello world?!");
    }

    #[test]
    fn first_copy_wins_even_when_the_first_copy_was_out_of_order() {
        // "XY" at offset 2 arrives first; then an in-order segment covering 0..4 with different bytes.
        let segs = vec![(12, b"XY".to_vec(), 0), (10, b"abcd".to_vec(), 0)];
        let (out, _) = run(&segs, BIG, Some(9));
        let bytes: Vec<u8> = out.into_iter().map(|b| b.unwrap()).collect();
        assert_eq!(bytes, b"abXY");
    }

    #[test]
    fn sequence_numbers_wrap() {
        let isn = u32::MAX - 3;
        let segs = vec![(isn.wrapping_add(4), b"defg".to_vec(), 0), (isn.wrapping_add(1), b"abc".to_vec(), 0)];
        let (out, _) = run(&segs, BIG, Some(isn));
        let bytes: Vec<u8> = out.into_iter().map(|b| b.unwrap()).collect();
        assert_eq!(bytes, b"abcdefg");
    }

    #[test]
    fn snaplen_cut_segments_become_gaps_of_the_right_size() {
        let segs = vec![(1, b"ab".to_vec(), 3), (6, b"fg".to_vec(), 0)];
        let (out, _) = run(&segs, BIG, Some(0));
        assert_eq!(out, vec![Some(b'a'), Some(b'b'), None, None, None, Some(b'f'), Some(b'g')]);
    }

    #[test]
    fn lost_segment_is_a_gap_at_flush() {
        let segs = vec![(1, b"ab".to_vec(), 0), (5, b"ef".to_vec(), 0)];
        let (out, _) = run(&segs, BIG, Some(0));
        assert_eq!(out, vec![Some(b'a'), Some(b'b'), None, None, Some(b'e'), Some(b'f')]);
    }

    #[test]
    fn fin_marks_the_end() {
        let mut r = Reassembler::new();
        let mut budget = MemoryBudget::new(1 << 20);
        r.on_syn(0);
        r.segment(1, b"abc", 0, true, &BIG, &mut budget, &mut |_| {});
        assert!(r.is_finished());
    }

    #[derive(Debug, Clone)]
    struct Plan {
        stream: Vec<u8>,
        isn: u32,
        /// (start, len) pieces in arrival order, with optional altered content for duplicates.
        pieces: Vec<(usize, usize, bool)>,
        drop: Option<(usize, usize)>,
    }

    fn plan() -> impl Strategy<Value = Plan> {
        (proptest::collection::vec(any::<u8>(), 1..3000), any::<u32>(), proptest::collection::vec(1usize..400, 1..60), any::<u64>(), any::<bool>())
            .prop_map(|(stream, isn, sizes, seed, lossy)| {
                // Cut the stream into pieces, then shuffle, duplicate and overlap them deterministically.
                let mut pieces = Vec::new();
                let mut pos = 0;
                let mut i = 0;
                while pos < stream.len() {
                    let len = sizes[i % sizes.len()].min(stream.len() - pos);
                    pieces.push((pos, len, false));
                    pos += len;
                    i += 1;
                }
                let mut state = seed | 1;
                let mut rnd = move |n: usize| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state % n.max(1) as u64) as usize
                };
                let dups: Vec<_> = (0..pieces.len() / 3)
                    .map(|_| {
                        let (s, l, _) = pieces[rnd(pieces.len())];
                        let extra = rnd(50);
                        let start = s.saturating_sub(rnd(20));
                        (start, (l + extra).min(stream.len() - start), true)
                    })
                    .collect();
                pieces.extend(dups);
                for k in (1..pieces.len()).rev() {
                    let j = rnd(k + 1);
                    pieces.swap(k, j);
                }
                let drop = (lossy && stream.len() > 10).then(|| {
                    let s = rnd(stream.len() - 5);
                    (s, 1 + rnd(stream.len() - s - 1))
                });
                Plan { stream, isn, pieces, drop }
            })
    }

    /// The model: each byte takes the value of the first arriving piece that covers it.
    fn model(p: &Plan) -> Vec<Option<u8>> {
        let mut m: Vec<Option<u8>> = vec![None; p.stream.len()];
        for &(s, l, altered) in &p.pieces {
            for (i, slot) in m.iter_mut().enumerate().skip(s).take(l) {
                if p.drop.is_some_and(|(ds, dl)| i >= ds && i < ds + dl) {
                    continue;
                }
                if slot.is_none() {
                    *slot = Some(if altered { p.stream[i] ^ 0x5a } else { p.stream[i] });
                }
            }
        }
        // A byte never sent stays None; bytes after the last one sent do not exist on the wire.
        let last = m.iter().rposition(|b| b.is_some()).map_or(0, |i| i + 1);
        m.truncate(last);
        m
    }

    fn segments(p: &Plan) -> Vec<(u32, Vec<u8>, u32)> {
        let mut out = Vec::new();
        for &(s, l, altered) in &p.pieces {
            // Remove the dropped range from each piece (it may split a piece in two).
            let mut ranges = vec![(s, s + l)];
            if let Some((ds, dl)) = p.drop {
                ranges = ranges
                    .into_iter()
                    .flat_map(|(a, b)| {
                        let mut r = Vec::new();
                        if a < ds.min(b) {
                            r.push((a, ds.min(b)));
                        }
                        if (ds + dl).max(a) < b {
                            r.push(((ds + dl).max(a), b));
                        }
                        r
                    })
                    .collect();
            }
            for (a, b) in ranges {
                let bytes: Vec<u8> = p.stream[a..b].iter().map(|x| if altered { x ^ 0x5a } else { *x }).collect();
                out.push((p.isn.wrapping_add(1).wrapping_add(a as u32), bytes, 0));
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Any segmentation, order, duplication and overlap gives the first-copy stream, with lost
        /// bytes reported as gaps of the right length.
        #[test]
        fn output_matches_first_copy_model(p in plan()) {
            let (out, _) = run(&segments(&p), BIG, Some(p.isn));
            prop_assert_eq!(out, model(&p));
        }

        /// With tight caps the reassembler gives up on waiting but never loses its place: total
        /// output length stays right, caps hold, and every byte handed on is correct.
        #[test]
        fn caps_hold_and_stream_stays_aligned(p in plan(), cap in 1usize..600) {
            let limits = ReassemblyLimits { max_held_bytes: cap, max_held_segments: 8 };
            let (out, peak) = run(&segments(&p), limits, Some(p.isn));
            let m = model(&p);
            prop_assert!(peak <= cap + 400, "held {} with cap {}", peak, cap);
            prop_assert!(out.len() >= m.len());
            for (i, b) in out.iter().enumerate() {
                if let (Some(got), Some(Some(want))) = (b, m.get(i)) {
                    // A byte handed on after the cap forced a skip may come from a later copy.
                    let original = p.stream[i];
                    prop_assert!(*got == *want || *got == original || *got == original ^ 0x5a);
                }
            }
        }

        #[test]
        fn arbitrary_segments_never_panic(segs in proptest::collection::vec((any::<u32>(), proptest::collection::vec(any::<u8>(), 0..50), 0u32..100, any::<bool>()), 0..40)) {
            let mut r = Reassembler::new();
            let mut budget = MemoryBudget::new(4096);
            let limits = ReassemblyLimits { max_held_bytes: 1000, max_held_segments: 16 };
            for (seq, data, missing, fin) in &segs {
                r.segment(*seq, data, *missing, *fin, &limits, &mut budget, &mut |_| {});
            }
            r.flush(&mut budget, &mut |_| {});
            prop_assert_eq!(budget.used, 0);
        }
    }
}
