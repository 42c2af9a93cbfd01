//! The bounded YAML builder and the depth pre-scan, against hostile texts
//! (#10 findings 2 and 3) and against serde_yaml_ng itself.

use super::*;
use proptest::prelude::*;

fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, d)) = stack.pop() {
        if v.is_array() || v.is_object() {
            deepest = deepest.max(d + 1);
        }
        match v {
            Value::Array(a) => stack.extend(a.iter().map(|c| (c, d + 1))),
            Value::Object(o) => stack.extend(o.values().map(|c| (c, d + 1))),
            _ => {}
        }
    }
    deepest
}

const OPEN: YamlLimits = YamlLimits {
    max_size: u64::MAX,
    max_depth: 64,
};

#[test]
fn documents_within_the_limits_parse_as_serde_yaml_ng_reads_them() {
    let text = b"a: [1, {b: 'x'}]\nc:\n- d: |\n    text [\n- e\nf: &f {g: 1.5}\nh: *f\n";
    let want: Value = serde_yaml_ng::from_slice(text).unwrap();
    assert_eq!(parse(text, OPEN).unwrap(), want);
    assert_eq!(
        parse(
            b"a: [[1]]",
            YamlLimits {
                max_depth: 2,
                ..OPEN
            }
        ),
        Err(YamlError::TooDeep { limit: 2 })
    );
    assert!(parse(
        b"a: [1]",
        YamlLimits {
            max_depth: 2,
            ..OPEN
        }
    )
    .is_ok());
    assert!(matches!(
        parse(b"a: [1", OPEN),
        Err(YamlError::Syntax { .. })
    ));
}

/// #10 finding 2: one anchor referenced 10,000 times is refused once it has
/// grown past the budget, not after expanding to gigabytes.
#[test]
fn alias_bombs_are_refused_at_the_budget() {
    let mut text = format!("a: &a [{}]\ninput: [", "xxxxxxxxxx,".repeat(400));
    text.push_str(&"*a,".repeat(10_000));
    text.push_str("]\n");
    let limits = YamlLimits::for_text(text.len(), 64);
    assert_eq!(
        parse(text.as_bytes(), limits),
        Err(YamlError::TooLarge {
            limit: limits.max_size
        })
    );
}

/// #10 finding 3: 100,000 levels in every form libyaml nests, refused by
/// the pre-scan before serde_yaml_ng sees them (in a debug build each takes
/// milliseconds; unscanned, the flow mapping alone took minutes).
#[test]
fn deep_nesting_is_refused_before_parsing_in_every_form() {
    let n = 100_000;
    let forms = [
        "[".repeat(n),
        "{a: ".repeat(n),
        "{".repeat(n),
        "- ".repeat(n) + "x",
        "? ".repeat(n) + "x",
        "- a: ".repeat(n) + "x",
        "[a, ".repeat(n),
        "a: [".to_string() + &"{b: [".repeat(n),
    ];
    for text in &forms {
        assert!(exceeds_depth(text.as_bytes(), 64), "{}", &text[..20]);
        assert_eq!(
            parse(text.as_bytes(), OPEN),
            Err(YamlError::TooDeep { limit: 64 })
        );
    }
    // Block mappings nest by indentation (the text grows with the square).
    let block: String = (0..2_000)
        .map(|i| format!("{}a:\n", " ".repeat(i)))
        .collect();
    assert!(exceeds_depth(block.as_bytes(), 64));
    assert!(!exceeds_depth(block.as_bytes(), 2_000));
}

#[test]
fn brackets_that_are_not_structure_are_not_counted() {
    let deep = "[{".repeat(100);
    for text in [
        format!("a: \"{deep}\"\n"),
        format!("a: '{deep}''{deep}'\n"),
        format!("# {deep}\na: 1\n"),
        format!("a: b {deep}\n"),
        format!("a: |\n  {deep}\n  \"\nb: 1\n"),
        format!("- >-\n   {deep}\n- x\n"),
        format!("a: !t{deep} x\n"),
        format!("a: \"multi\n  line {deep}\n  \" # {deep}\n"),
        format!("a: plain\n  continued {deep}\n"),
    ] {
        assert!(!exceeds_depth(text.as_bytes(), 3), "{text}");
        // (libyaml refuses the tag with brackets; the others parse.)
        if serde_yaml_ng::from_str::<Value>(&text).is_ok() {
            assert!(parse(text.as_bytes(), OPEN).is_ok(), "{text}");
        }
    }
}

/// Texts built so that a scanner with looser rules than libyaml's would
/// take real brackets for part of a string: each must still be counted.
#[test]
fn structure_after_scalars_that_end_early_is_counted() {
    let deep = "[".repeat(100) + &"]".repeat(100);
    for text in [
        // The block scalar's content starts at column 2 and holds a quote;
        // the structure after it is real.
        format!("a: \"x\n  [y\"\nb: |\n  # c\n  \"\nc: {deep}\n"),
        // Compact sequences: the block scalar's content must be indented
        // past the innermost sequence (column 2), so this line is not in it.
        format!("- - |\n  - {deep}\n"),
        // A quote inside a plain scalar opens nothing.
        format!("a: it's\nb: {deep}\n"),
        format!("a: x\"y\nb: {deep}\n"),
        // A `#` inside a quoted scalar is no comment.
        format!("a: \"# x\" \nb: {deep}\n"),
        format!("a: [\"x\n\", {deep}]\n"),
    ] {
        assert!(exceeds_depth(text.as_bytes(), 64), "{text}");
    }
}

/// Pieces of YAML that change how the text after them is read.
fn piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "[",
        "]",
        "{",
        "}",
        ", ",
        ": ",
        ":",
        "- ",
        "-",
        "? ",
        "\n",
        "\n  ",
        "\n    ",
        "  ",
        "a",
        "b1",
        "\"s[{\"",
        "\"",
        "'",
        "'q]''",
        "# c[\n",
        "|\n",
        "|-\n",
        ">2\n",
        "&x ",
        "!t ",
        "!!str ",
        "x\"y",
        "it's",
        "\t",
        "\r\n",
        "... ",
        "\n---\n",
        "%YAML 1.2\n",
    ])
}

/// Scalars whose text holds brackets, quotes and comment signs that are
/// not structure, in every style.
const SCALARS: [&str; 6] = [
    "\"a[{ '#\"",
    "'b]''[{ \"c'",
    "plain [x {y it's",
    "\"multi\n  line [[ # not a comment\n  end\"",
    "x\"[y",
    "'{{['",
];

/// Renders `shape` as YAML in random styles (`choices` picks them): block
/// collections on their own lines, flow collections inline (and only flow
/// inside them), block scalars with bracket-laden content, comments. Every
/// collection of the shape is a collection of the text, so the document is
/// exactly as deep as `shape`.
fn render(
    shape: &Value,
    indent: usize,
    in_flow: bool,
    choices: &mut impl Iterator<Item = u8>,
    out: &mut String,
) {
    let mut pick = || usize::from(choices.next().unwrap_or(0));
    let block = !in_flow && pick() % 2 == 0;
    let pad = " ".repeat(indent);
    match shape {
        Value::Array(items) if block && !items.is_empty() => {
            for item in items {
                out.push_str(&format!("\n{pad}- "));
                render(item, indent + 2, false, choices, out);
            }
        }
        Value::Object(fields) if block && !fields.is_empty() => {
            for (key, value) in fields {
                out.push_str(&format!("\n{pad}k{key}: "));
                render(value, indent + 2, false, choices, out);
            }
        }
        Value::Array(items) => {
            out.push('[');
            for item in items {
                render(item, indent, true, choices, out);
                out.push_str(", ");
            }
            out.push(']');
        }
        Value::Object(fields) => {
            out.push('{');
            for (key, value) in fields {
                out.push_str(&format!("k{key}: "));
                render(value, indent, true, choices, out);
                out.push_str(", ");
            }
            out.push('}');
        }
        _ if in_flow => {
            let i = pick() % 3;
            out.push_str(["\"q[{\"", "'s]]'", "p"][i]);
        }
        _ => match pick() % 4 {
            0 => out.push_str(&format!("|\n{pad}  \"[{{ # x\n{pad}  ]]'\n")),
            1 => {
                let i = pick() % 6;
                out.push_str(&format!("{} # c[{{", SCALARS[i]));
            }
            _ => {
                let i = pick() % 6;
                out.push_str(SCALARS[i]);
            }
        },
    }
}

fn shape() -> impl Strategy<Value = Value> {
    let leaf = Just(Value::Null);
    leaf.prop_recursive(8, 48, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(inner, 0..4).prop_map(|v| Value::Object(
                v.into_iter()
                    .enumerate()
                    .map(|(i, v)| (i.to_string(), v))
                    .collect()
            )),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// Deep documents in mixed styles with bracket-laden scalars: the
    /// pre-scan counts exactly the depth serde_yaml_ng builds.
    #[test]
    fn the_prescan_counts_generated_documents_exactly(
        shape in shape(),
        choices in prop::collection::vec(any::<u8>(), 64),
    ) {
        let mut text = "doc: ".to_string();
        render(&shape, 2, false, &mut choices.into_iter().cycle(), &mut text);
        text.push('\n');
        let value: Value = serde_yaml_ng::from_str(&text)
            .map_err(|e| TestCaseError::fail(format!("{text}\n{e}")))?;
        let d = depth(&value);
        prop_assert!(!exceeds_depth(text.as_bytes(), d), "{text} depth {d}");
        prop_assert!(exceeds_depth(text.as_bytes(), d - 1), "{text} depth {d}");
    }

    /// Whatever serde_yaml_ng parses, the pre-scan counts no deeper than
    /// the document is (nothing within the limit is refused) and at least
    /// half as deep (a sequence at its mapping's indentation is the only
    /// level it leaves out), so it cannot be led to skip real nesting.
    #[test]
    fn the_prescan_agrees_with_serde_yaml_ng(pieces in prop::collection::vec(piece(), 0..40)) {
        let text = pieces.concat();
        if let Ok(value) = serde_yaml_ng::from_str::<Value>(&text) {
            let d = depth(&value);
            prop_assert!(!exceeds_depth(text.as_bytes(), d), "{text:?} depth {d}");
            if d >= 2 {
                prop_assert!(exceeds_depth(text.as_bytes(), d.div_ceil(2) - 1), "{text:?} depth {d}");
            }
            prop_assert_eq!(parse(text.as_bytes(), YamlLimits { max_depth: d, ..OPEN }).ok(), Some(value));
        }
    }

    /// Random nesting and alias structures: refused or parsed within the
    /// budget, never a panic.
    #[test]
    fn random_texts_are_refused_or_parsed_within_the_budget(
        pieces in prop::collection::vec(prop_oneof![piece(), Just("*x"), Just("*x, ")], 0..60),
        max_size in 0u64..200,
        max_depth in 0usize..8,
    ) {
        let text = pieces.concat();
        let limits = YamlLimits { max_size, max_depth };
        if let Ok(value) = parse(text.as_bytes(), limits) {
            prop_assert!(depth(&value) <= max_depth);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = exceeds_depth(&bytes, 4);
        let _ = parse(&bytes, YamlLimits { max_size: 1000, max_depth: 4 });
    }
}
