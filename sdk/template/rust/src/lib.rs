//! upper: a Weir transform that upper-cases each record's value and sends
//! records with an empty value to the pipeline's dead-letter topic.
//!
//!     weir transform build --test   # run the tests below natively, then build the .wasm
//!
//! See docs/transforms.md in the Weir repository.

use weir_transform::{Context, Error, Record};

weir_transform::on_record!(upper);

pub fn upper(r: &Record, ctx: &mut Context) -> Result<(), Error> {
    if r.value.is_empty() {
        return ctx.dead_letter("empty value"); // to the pipeline's dead-letter topic
    }
    let v = r.value.to_ascii_uppercase();
    ctx.emit(&Record { value: &v, ..r.clone() }) // to the first output
}

#[cfg(test)]
mod tests {
    use weir_transform::testing::{kv, Harness, Options};

    #[test]
    fn upper_cases_and_dead_letters_empty_values() {
        let mut h = Harness::new(Options::default());
        let out = h.records(super::upper, &[kv("k", "hello"), kv("k", "")]).unwrap();
        assert_eq!(out.values(), vec!["HELLO"]);
        assert_eq!(out.dead.len(), 1);
        assert_eq!(out.dead[0].index, 1);
    }

    #[test]
    fn registered_handler() {
        let mut h = Harness::new(Options::default());
        let out = h.run(super::WEIR_HANDLER, &[kv("k", "abc")]).unwrap();
        assert_eq!(out.values(), vec!["ABC"]);
    }
}
