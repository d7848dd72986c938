//! Streaming evaluation (issue 16): a text that arrives in chunks (an AI answer streamed over
//! HTTP) is governed as it arrives, with the same result as evaluating the whole text at once.
//!
//! Detection is not local: a value's parser reads ahead (a quoted password up to its closing
//! quote, a phone number over its spaces) and what precedes a value changes whether it is one
//! (`SSN:` before nine digits, `phone` before a national number, a letter glued to a digit).
//! The stream therefore keeps a window of the text: the unreleased text, plus the tail of the
//! released text as context. Each evaluation of the window releases the text up to a *cut*:
//!
//! - a position right after ASCII whitespace (no unbounded run of a value crosses it: keys, JWTs,
//!   e-mails and unquoted passwords end at whitespace),
//! - at least `MAX_LOOK_AHEAD` bytes (of folded text) before the end of the window, so every
//!   value starting before the cut was decided on the same bytes as in the whole text,
//! - not inside any value found.
//!
//! The released text keeps its last `MAX_LOOK_BEHIND` bytes (of folded text, from a position
//! after whitespace and not after a digit, outside any value) as the next window's context. The
//! window is evaluated again only when it has grown by half (and by at least [`STEP`] bytes), so
//! the work is linear in the input: about three detections per byte, and released text is never
//! read again beyond that context.
//!
//! The limits, and where equality with the one-shot check ends:
//!
//! - A text with no cut for [`TextStream::with_max_hold`] bytes (default [`DEFAULT_MAX_HOLD`],
//!   64 KiB), that is a whitespace-free run that long (a base64 blob, a huge token), is cut
//!   without whitespace; a value crossing that cut is governed as two values.
//! - Look-ahead and context are measured in folded bytes, but at most four times as many
//!   input bytes: a value padded with hundreds of invisible characters (which folding drops)
//!   may be found differently.
//! - Memory is bounded by the cap, plus the context, plus the largest chunk pushed.

use crate::detect::unicode::folded_len;
use crate::detect::{spend, MAX_LOOK_AHEAD, MAX_LOOK_BEHIND};
use crate::eval::{Decision, Evaluator, Finding, Level, Match, PolicyId, Verdict};
use crate::gate::Gate;
use crate::pii::PiiType;
use crate::policy::PiiAction;
use crate::reason::Reason;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Default cap on the text held back waiting for a cut, in bytes.
pub const DEFAULT_MAX_HOLD: usize = 64 << 10;

/// Smallest accepted cap: below a few look-aheads no cut would ever be found.
const MIN_MAX_HOLD: usize = 4 * MAX_LOOK_AHEAD;

/// Growth of the window (bytes) before it is evaluated again.
pub const STEP: usize = 256;

/// Why a stream stopped: terminal, every later call answers the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamStop {
    /// The text is denied. The verdict has no text and the reasons found up to the deny; the
    /// text released before it stays released (nothing of the denied window is).
    Denied(Verdict),
    /// The input is not UTF-8: the first bad byte is `offset` bytes into the stream (a stream
    /// that ends inside a character names its length).
    InvalidUtf8 {
        /// Offset of the first byte that is not part of a valid character.
        offset: u64,
    },
}

impl fmt::Display for StreamStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamStop::Denied(v) => write!(f, "denied ({})", v.policy_id.name()),
            StreamStop::InvalidUtf8 { offset } => write!(f, "the text is not UTF-8 at byte {offset}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for StreamStop {}

/// The end of a stream that was not denied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamEnd {
    /// The last governed text (everything not yet released).
    pub rest: String,
    /// The verdict of the whole text, as the one-shot check gives it, but with `text_out: None`
    /// (the text was released piece by piece). Findings have byte offsets into the whole input.
    pub verdict: Verdict,
}

/// A text governed as it arrives: [`push`](TextStream::push) chunks of bytes (split anywhere,
/// inside characters too), get governed text back, [`finish`](TextStream::finish) for the rest
/// and the verdict. Made by [`Gate::check_stream`](crate::Gate::check_stream) and
/// [`Gate::postcheck_stream`](crate::Gate::postcheck_stream).
///
/// The stream borrows nothing (it can live in a struct, a JS object or a response body): each
/// call takes the gate, which must be one over the same policy, key and detector as the gate
/// that made the stream (a gate is only references: rebuild it per call from shared ones).
///
/// For every decision but `deny`, the concatenated output equals the `text_out` of the
/// one-shot check of the whole text, with the same decision, reasons and findings (as long as
/// some whitespace comes at least every `max_hold` bytes). A deny is known as soon as the
/// value or rule that denies is: the stream stops there ([`StreamStop::Denied`]).
///
/// ```
/// use warden_engine::{Decision, Detector, Gate, Policy, TokenKey};
///
/// let (policy, key, detector) = (Policy::default(), TokenKey::new("salt"), Detector::new());
/// let gate = Gate::new(&policy, &key, &detector);
/// // `web.` tools are network tools: every PII value is redacted.
/// let mut stream = gate.postcheck_stream("web.search", "");
/// let mut out = String::new();
/// // Chunks split values and characters (`\xE2\x80\x94` is an em dash).
/// let chunks: [&[u8]; 4] = [b"Write to ali", b"ce@exa", b"mple.com or call \xE2", b"\x80\x94 +44 20 7946 0958."];
/// for chunk in chunks {
///     out += &stream.push(&gate, chunk)?;
/// }
/// let end = stream.finish(&gate)?;
/// out += &end.rest;
/// assert_eq!(out, "Write to <USER_EMAIL> or call \u{2014} <USER_PHONE>.");
/// assert_eq!(end.verdict.decision, Decision::Transform);
/// let reasons: Vec<String> = end.verdict.reasons.iter().map(ToString::to_string).collect();
/// assert_eq!(reasons, ["pii.redacted:PII:email_address", "pii.redacted:PII:phone_number"]);
/// # Ok::<(), warden_engine::StreamStop>(())
/// ```
#[derive(Clone, Debug)]
pub struct TextStream {
    /// `None`: the strict fallback (nothing transformed; SSNs and passwords deny).
    plan: Option<StreamPlan>,
    policy_id: PolicyId,
    max_hold: usize,
    /// The window: released context, then unreleased text.
    buf: String,
    /// Offset of `buf` in the whole text (bytes).
    base: usize,
    /// Where the unreleased text starts in `buf`.
    released: usize,
    /// `buf.len()` after the last evaluation.
    last_run: usize,
    /// The start of a character split by a chunk boundary.
    carry: [u8; 4],
    carry_len: usize,
    /// Bytes accepted so far.
    consumed: u64,
    reasons: Vec<Reason>,
    seen: Vec<(PiiAction, PiiType)>,
    findings: Vec<Finding>,
    changed: bool,
    stop: Option<StreamStop>,
}

/// The deciding level's plan, owned: a stream borrows nothing between calls.
#[derive(Clone, Debug)]
struct StreamPlan {
    base: Decision,
    allow_pii: Option<BTreeMap<PiiType, PiiAction>>,
    fallback: PiiAction,
}

impl StreamPlan {
    fn action(&self, ty: &PiiType) -> PiiAction {
        self.allow_pii.as_ref().and_then(|a| a.get(ty)).copied().unwrap_or(self.fallback)
    }
}

impl TextStream {
    pub(crate) fn new(level: Level<'_>) -> TextStream {
        let mut s = TextStream {
            plan: None,
            policy_id: PolicyId::StrictFallback,
            max_hold: DEFAULT_MAX_HOLD,
            buf: String::new(),
            base: 0,
            released: 0,
            last_run: 0,
            carry: [0; 4],
            carry_len: 0,
            consumed: 0,
            reasons: Vec::new(),
            seen: Vec::new(),
            findings: Vec::new(),
            changed: false,
            stop: None,
        };
        match level {
            Level::Denied(v) => s.stop = Some(StreamStop::Denied(v)),
            Level::Strict => {}
            Level::Apply(plan) => {
                s.policy_id = plan.policy_id;
                s.reasons.extend(plan.first_reason.iter().cloned());
                // A level that denies whatever the text (`defaults: deny`) denies before any text.
                if plan.base == Decision::Deny {
                    s.stop = Some(StreamStop::Denied(s.verdict(Decision::Deny)));
                }
                s.plan =
                    Some(StreamPlan { base: plan.base, allow_pii: plan.allow_pii.cloned(), fallback: plan.fallback });
            }
        }
        s
    }

    /// Sets the cap on text held back waiting for a cut (bytes; at least four look-aheads,
    /// 1300 bytes, whatever is asked). Larger caps keep the one-shot equality for longer
    /// whitespace-free runs and cost that much memory per stream.
    pub fn with_max_hold(self, bytes: usize) -> TextStream {
        TextStream { max_hold: bytes.max(MIN_MAX_HOLD), ..self }
    }

    /// How many bytes are held back (received, not yet released).
    pub fn held(&self) -> usize {
        self.buf.len().saturating_sub(self.released) + self.carry_len
    }

    /// Adds a chunk; returns the governed text that can be released now (often empty: text is
    /// released in batches of a few hundred bytes, a few hundred bytes behind the input).
    ///
    /// # Errors
    ///
    /// [`StreamStop`] when the text is denied or is not UTF-8; the stream is over.
    pub fn push(&mut self, gate: &Gate<'_>, chunk: &[u8]) -> Result<String, StreamStop> {
        if let Some(stop) = &self.stop {
            return Err(stop.clone());
        }
        self.accept(chunk)?;
        self.advance(&gate.eval, false)
    }

    /// Ends the stream: the rest of the governed text and the verdict.
    ///
    /// # Errors
    ///
    /// [`StreamStop`] when the text is denied (now or before), or ends inside a character.
    pub fn finish(mut self, gate: &Gate<'_>) -> Result<StreamEnd, StreamStop> {
        if let Some(stop) = self.stop.take() {
            return Err(stop);
        }
        if self.carry_len > 0 {
            return Err(StreamStop::InvalidUtf8 { offset: self.consumed });
        }
        let rest = self.advance(&gate.eval, true)?;
        let decision = match &self.plan {
            None => Decision::Allow,
            Some(plan) if plan.base == Decision::Confirm => Decision::Confirm,
            Some(_) if self.changed => Decision::Transform,
            Some(_) => Decision::Allow,
        };
        if self.plan.is_none() {
            self.reasons.push(Reason::StrictFallbackAllow);
        }
        let mut verdict = self.verdict(decision);
        verdict.findings = core::mem::take(&mut self.findings);
        Ok(StreamEnd { rest, verdict })
    }

    fn verdict(&self, decision: Decision) -> Verdict {
        Verdict {
            decision,
            text_out: None,
            reasons: self.reasons.clone(),
            policy_id: self.policy_id,
            findings: Vec::new(),
            error: None,
        }
    }

    fn fail(&mut self, stop: StreamStop) -> StreamStop {
        self.stop = Some(stop.clone());
        stop
    }

    /// Appends the chunk's characters to the window, keeping a split character's start.
    fn accept(&mut self, mut chunk: &[u8]) -> Result<(), StreamStop> {
        while self.carry_len > 0 {
            let Some((&b, rest)) = chunk.split_first() else {
                return Ok(());
            };
            chunk = rest;
            if let Some(slot) = self.carry.get_mut(self.carry_len) {
                *slot = b;
            }
            self.carry_len += 1;
            let held = self.carry.get(..self.carry_len).unwrap_or_default();
            match core::str::from_utf8(held) {
                Ok(s) => {
                    self.buf.push_str(s);
                    self.consumed += self.carry_len as u64;
                    self.carry_len = 0;
                }
                Err(e) if e.error_len().is_some() || self.carry_len == 4 => {
                    let offset = self.consumed;
                    return Err(self.fail(StreamStop::InvalidUtf8 { offset }));
                }
                Err(_) => {}
            }
        }
        match core::str::from_utf8(chunk) {
            Ok(s) => {
                self.buf.push_str(s);
                self.consumed += s.len() as u64;
            }
            Err(e) => {
                let (valid, tail) = chunk.split_at(e.valid_up_to());
                self.buf.push_str(core::str::from_utf8(valid).unwrap_or_default());
                self.consumed += valid.len() as u64;
                if e.error_len().is_some() {
                    let offset = self.consumed;
                    return Err(self.fail(StreamStop::InvalidUtf8 { offset }));
                }
                // An incomplete character at the end: at most 3 bytes.
                for (slot, &b) in self.carry.iter_mut().zip(tail) {
                    *slot = b;
                }
                self.carry_len = tail.len().min(3);
            }
        }
        Ok(())
    }

    /// Evaluates the window when it has grown enough (or at the end) and releases up to a cut.
    fn advance(&mut self, eval: &Evaluator<'_>, last: bool) -> Result<String, StreamStop> {
        let pending = self.buf.len() - self.released;
        let grown = self.buf.len() - self.last_run;
        if !last && grown < STEP.max(self.last_run / 2) && pending <= self.max_hold {
            return Ok(String::new());
        }
        let matches = eval.find(&self.buf);
        let cut = if last { Some(self.buf.len()) } else { self.cut(&matches) };
        let Some(cut) = cut else {
            self.last_run = self.buf.len();
            return Ok(String::new());
        };
        let out = self.release(eval, &matches, cut)?;
        self.slide(&matches, cut);
        Ok(out)
    }

    /// The latest cut in the unreleased text, if any (see the module docs).
    fn cut(&self, matches: &[Match]) -> Option<usize> {
        let b = self.buf.as_bytes();
        let limit = self.ahead_limit();
        // `matches[..k]` start before the candidate; only the last of them can cross it.
        let mut k = matches.len();
        let mut p = limit.unwrap_or(0);
        while p > self.released {
            spend(1);
            let after_blank = p.checked_sub(1).and_then(|i| b.get(i)).is_some_and(u8::is_ascii_whitespace);
            if after_blank {
                while k > 0 && matches.get(k - 1).is_some_and(|m| m.start >= p) {
                    k -= 1;
                }
                if k.checked_sub(1).and_then(|i| matches.get(i)).is_none_or(|m| m.end <= p) {
                    return Some(p);
                }
            }
            p -= 1;
        }
        if self.buf.len() - self.released <= self.max_hold {
            return None;
        }
        // Over the cap: cut without whitespace, outside a value if one allows it. (A run of
        // characters folding drops has no look-ahead limit: cut by bytes.)
        let limit = limit.unwrap_or_else(|| floor_boundary(&self.buf, self.buf.len().saturating_sub(MAX_LOOK_AHEAD)));
        let crossing = matches.iter().rev().find(|m| m.start < limit).filter(|m| m.end > limit);
        let p = match crossing {
            Some(m) if m.start > self.released => m.start,
            Some(m) => m.end,
            None => limit,
        };
        (p > self.released).then_some(p)
    }

    /// The last char boundary with at least `MAX_LOOK_AHEAD` folded bytes after it (or four
    /// times that in the input: characters folding drops do not extend it without bound).
    fn ahead_limit(&self) -> Option<usize> {
        let tail = self.buf.get(self.released..)?;
        let mut folded = 0;
        for (i, c) in tail.char_indices().rev() {
            spend(1);
            folded += folded_len(c);
            if folded >= MAX_LOOK_AHEAD || tail.len() - i >= 4 * MAX_LOOK_AHEAD {
                return Some(self.released + i);
            }
        }
        None
    }

    /// Governs the unreleased text before `cut` with the window's matches.
    fn release(&mut self, eval: &Evaluator<'_>, matches: &[Match], cut: usize) -> Result<String, StreamStop> {
        let start = self.released;
        let mut out = String::with_capacity(cut - start);
        let mut pos = start;
        let mut denied = false;
        for m in matches.iter().filter(|m| m.start >= start && m.start < cut) {
            let value = self.buf.get(m.start..m.end).unwrap_or_default();
            let found = Match { ty: m.ty.clone(), start: self.base + m.start, end: self.base + m.end };
            let Some(plan) = &self.plan else {
                if Evaluator::strict_blocks(&m.ty) {
                    let r = Reason::StrictPiiBlocked(m.ty.clone());
                    if !self.reasons.contains(&r) {
                        self.reasons.push(r);
                    }
                    denied = true;
                }
                self.findings.push(Finding { found, action: None });
                continue;
            };
            let action = plan.action(&m.ty);
            out.push_str(self.buf.get(pos..m.start).unwrap_or_default());
            match action {
                PiiAction::PassThrough => out.push_str(value),
                PiiAction::Tokenize => {
                    let token = eval.token(&m.ty, value);
                    self.changed |= token != value;
                    out.push_str(&token);
                }
                PiiAction::Encrypt => {
                    let token = eval.encrypted(&m.ty, value);
                    self.changed |= token != value;
                    out.push_str(&token);
                }
                PiiAction::Redact => {
                    let placeholder = eval.placeholder(&m.ty);
                    self.changed |= placeholder != value;
                    out.push_str(placeholder);
                }
                PiiAction::Deny => denied = true,
            }
            pos = m.end;
            self.findings.push(Finding { found, action: Some(action) });
            if !self.seen.iter().any(|(a, t)| *a == action && *t == m.ty) {
                self.seen.push((action, m.ty.clone()));
                self.reasons.push(Reason::Pii { outcome: action.into(), ty: m.ty.clone() });
            }
        }
        if denied {
            let mut verdict = self.verdict(Decision::Deny);
            verdict.findings = core::mem::take(&mut self.findings);
            return Err(self.fail(StreamStop::Denied(verdict)));
        }
        if self.plan.is_none() {
            pos = start;
        }
        out.push_str(self.buf.get(pos..cut).unwrap_or_default());
        Ok(out)
    }

    /// Drops released text except the context the next window needs.
    fn slide(&mut self, matches: &[Match], cut: usize) {
        let b = self.buf.as_bytes();
        let mut folded = 0;
        let mut from = None;
        for (i, c) in self.buf.get(..cut).unwrap_or_default().char_indices().rev() {
            spend(1);
            folded += folded_len(c);
            if folded >= MAX_LOOK_BEHIND || cut - i >= 4 * MAX_LOOK_BEHIND {
                from = Some(i);
                break;
            }
        }
        let keep_from = from.map_or(0, |from| {
            // A clean start: after whitespace, not after a digit (a space-grouped number's
            // tail reads the group before it), outside any value.
            let clean = |a: usize| {
                let blank = a.checked_sub(1).and_then(|i| b.get(i)).is_some_and(u8::is_ascii_whitespace);
                let digit = a.checked_sub(2).and_then(|i| b.get(i)).is_some_and(u8::is_ascii_digit);
                let k = matches.partition_point(|m| m.start < a);
                let inside = k.checked_sub(1).and_then(|i| matches.get(i)).is_some_and(|m| m.end > a);
                blank && !digit && !inside
            };
            let mut a = from;
            while a > 0 && !clean(a) {
                spend(1);
                a -= 1;
            }
            // No clean start in the whole window: keep it unless it grows past the cap.
            if a == 0 && cut > self.max_hold {
                from
            } else {
                a
            }
        });
        self.buf.drain(..keep_from);
        self.base += keep_from;
        self.released = cut - keep_from;
        self.last_run = self.buf.len();
    }
}

/// The last char boundary of `s` at or before `i`.
fn floor_boundary(s: &str, i: usize) -> usize {
    (0..=i.min(s.len())).rev().find(|&j| s.is_char_boundary(j)).unwrap_or(0)
}
