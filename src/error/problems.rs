//! `Problems`: the field problems of one request, as a 422 reports them. At most
//! `MAX_LISTED_PROBLEMS` are kept; the rest are only counted, so a body full of bad items
//! costs a count, not a message each.

use super::FieldError;

/// Most problems one 422 lists in `detail`; `more_problems` counts the others.
pub const MAX_LISTED_PROBLEMS: usize = 100;

/// The problems found in one request: the first `MAX_LISTED_PROBLEMS`, and how many more.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems {
    listed: Vec<FieldError>,
    more: usize,
}

impl Problems {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a problem.
    pub fn push(&mut self, problem: FieldError) {
        self.push_with(|| problem);
    }

    /// Records a problem, building it only if it is to be listed: for messages that take
    /// formatting, which a request with thousands of problems should not pay for.
    pub fn push_with(&mut self, problem: impl FnOnce() -> FieldError) {
        if self.listed.len() < MAX_LISTED_PROBLEMS {
            self.listed.push(problem());
        } else {
            self.more += 1;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.listed.is_empty() && self.more == 0
    }

    /// The problems listed, in the order they were found.
    pub fn listed(&self) -> &[FieldError] {
        &self.listed
    }

    /// How many problems were found beyond those listed.
    pub fn more(&self) -> usize {
        self.more
    }

    pub(super) fn into_parts(self) -> (Vec<FieldError>, usize) {
        (self.listed, self.more)
    }
}

impl From<Vec<FieldError>> for Problems {
    fn from(problems: Vec<FieldError>) -> Self {
        let mut all = Self::new();
        for problem in problems {
            all.push(problem);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_limit_problems_are_counted_and_never_built() {
        let mut problems = Problems::new();
        let mut built = 0;
        for i in 0..10_000 {
            problems.push_with(|| {
                built += 1;
                FieldError::new(format!("f{i}"), "is bad")
            });
        }
        assert_eq!(built, MAX_LISTED_PROBLEMS);
        assert_eq!(problems.listed().len(), MAX_LISTED_PROBLEMS);
        assert_eq!(problems.listed()[99].field, "f99");
        assert_eq!(problems.more(), 10_000 - MAX_LISTED_PROBLEMS);
        assert!(!problems.is_empty());
        assert!(Problems::new().is_empty());
    }
}
