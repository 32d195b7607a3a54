//! The answer in words: the line the demo and `query` print, and the sentence `--say` speaks.
use super::{Answer, AnswerHit};
use crate::index::Matched;

/// The answer in one phrase.
pub fn headline(answer: &Answer) -> String {
    match (&answer.label, answer.score) {
        (None, _) => "not in memory (the memory is empty)".into(),
        (Some(label), Some(score)) if answer.not_in_memory => match answer.threshold {
            Some(t) => format!(
                "not in memory (best guess {label} at {score:.3} is below the threshold {t:.3})"
            ),
            None => format!("not in memory (best guess {label})"),
        },
        (Some(label), Some(score)) if by_label(answer) => {
            format!("{label} ({score:.3}, by its label)")
        }
        (Some(label), Some(score)) => format!("{label} ({score:.3})"),
        (Some(label), None) => label.clone(),
    }
}

fn by_label(answer: &Answer) -> bool {
    answer.best().is_some_and(|b| b.matched == Matched::Label)
}

/// What `--say` speaks.
pub fn spoken(answer: &Answer) -> String {
    match &answer.label {
        Some(label) if !answer.not_in_memory => format!("{label}. I have seen it."),
        _ => "I have not seen that.".into(),
    }
}

/// What a hit line adds when the memory's label, not its picture, matched.
pub fn by_label_mark(h: &AnswerHit) -> &'static str {
    if h.matched == Matched::Label {
        "  (by its label)"
    } else {
        ""
    }
}

/// `visualbyte query`'s answer: the answer line, the ranked memories and the timings.
pub fn report(a: &Answer) -> String {
    let mut s = match (a.best(), a.not_in_memory, a.threshold) {
        (None, _, _) => "not in memory (the memory is empty)\n".to_string(),
        (Some(b), true, Some(t)) => {
            format!(
                "not in memory (best: {} {:.2} < {:.2})\n",
                b.label, b.score, t
            )
        }
        (Some(b), true, None) => format!("not in memory (best: {} {})\n", b.label, b.score),
        (Some(b), false, _) if b.matched == Matched::Label => {
            format!("{} ({:.2}, by its label)\n", b.label, b.score)
        }
        (Some(b), false, _) => format!("{} ({:.2})\n", b.label, b.score),
    };
    let width = a
        .hits
        .iter()
        .map(|h| h.label.chars().count())
        .max()
        .unwrap_or(0);
    for (n, h) in a.hits.iter().enumerate() {
        s.push_str(&format!(
            "{:>3}. {:<width$}  {:.3}  {}{}\n",
            n + 1,
            h.label,
            h.score,
            h.path,
            by_label_mark(h)
        ));
    }
    let t = &a.timings;
    s.push_str(&format!(
        "{} query: render {:.1} ms, embed {:.1} ms, search {:.1} ms (total {:.1} ms)\n",
        a.modality,
        t.render_ms,
        t.embed_ms,
        t.search_ms,
        t.total_ms()
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::{rank, Modality, Timings};

    fn answer(not_in_memory: bool) -> Answer {
        Answer {
            query: "tiger".into(),
            modality: Modality::Text,
            label: Some("tiger".into()),
            score: Some(0.2),
            hits: vec![AnswerHit {
                label: "tiger".into(),
                path: "memory/tiger.png".into(),
                score: 0.2,
                matched: crate::index::Matched::Picture,
            }],
            labels: vec![],
            threshold: Some(0.42),
            not_in_memory,
            timings: Timings::default(),
        }
    }

    #[test]
    fn low_scores_are_said_to_be_not_in_memory() {
        let h = headline(&answer(true));
        assert!(h.starts_with("not in memory"), "{h}");
        assert!(h.contains("0.420"), "{h}");
        assert_eq!(spoken(&answer(true)), "I have not seen that.");
        assert_eq!(headline(&answer(false)), "tiger (0.200)");
    }

    /// A memory of `label`, found by its picture, stored as `/m/<label>.png`.
    fn hit(label: &str, score: f32) -> AnswerHit {
        let path = format!("/m/{label}.png");
        AnswerHit {
            label: label.into(),
            path,
            score,
            matched: Matched::Picture,
        }
    }

    #[test]
    fn the_answer_line_says_the_label_or_not_in_memory() {
        let t = Timings::default();
        let a = rank(
            "q".into(),
            Modality::Text,
            vec![hit("tiger", 0.83), hit("cat", 0.5)],
            5,
            Some(0.35),
            t,
        );
        let s = report(&a);
        assert!(s.starts_with("tiger (0.83)\n"), "{s}");
        assert!(s.contains("  1. tiger  0.830  /m/tiger.png\n"), "{s}");
        assert!(s.contains("  2. cat    0.500  /m/cat.png\n"), "{s}");
        assert!(s.contains("text query: render"), "{s}");
        let a = rank(
            "q".into(),
            Modality::Audio,
            vec![hit("tiger", 0.21)],
            5,
            Some(0.35),
            t,
        );
        assert!(report(&a).starts_with("not in memory (best: tiger 0.21 < 0.35)\n"));
        let mut by_label = hit("tiger", 0.9);
        by_label.matched = Matched::Label;
        let a = rank("q".into(), Modality::Text, vec![by_label], 5, Some(0.35), t);
        let s = report(&a);
        assert!(s.starts_with("tiger (0.90, by its label)\n"), "{s}");
        assert!(
            s.contains("  1. tiger  0.900  /m/tiger.png  (by its label)\n"),
            "{s}"
        );
        let a = rank("q".into(), Modality::Image, vec![], 5, Some(0.35), t);
        assert!(report(&a).starts_with("not in memory (the memory is empty)\n"));
    }
}
