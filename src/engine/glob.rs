//! `*` (any run of characters) and `?` (one character) patterns, as IAM's StringLike and the
//! operator's ARN patterns use them. Case-sensitive; callers fold case where they mean to.

pub fn matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    #[test]
    fn stars_and_question_marks() {
        assert!(super::matches("a*b*c", "aXXbYYc"));
        assert!(!super::matches("a*b*c", "aXXbYY"));
        assert!(super::matches(
            "system:serviceaccount:shop:*",
            "system:serviceaccount:shop:cart"
        ));
        assert!(super::matches("?", "x") && !super::matches("?", ""));
        assert!(!super::matches("A", "a"));
    }
}
