//! For the classic builder: only the stages a target needs, as BuildKit would build them
//! (an unused `test` stage that fails is never run), numeric `--from` references renumbered.

use crate::dockerfile_compat::Instruction;
use crate::BuildError;
use std::collections::{BTreeMap, BTreeSet};

/// A stage: its instructions' range, its name, and the stages it reads from.
struct Stage {
    name: Option<String>,
    range: std::ops::Range<usize>,
    uses: Vec<String>,
}

/// Keeps the global `ARG`s and the stages the target needs; rewrites numeric `--from`
/// references to the kept stages' new numbers.
pub(crate) fn prune_stages(
    instructions: Vec<Instruction>,
    target: Option<&str>,
    notes: &mut Vec<String>,
) -> Result<Vec<Instruction>, BuildError> {
    let mut stages: Vec<Stage> = Vec::new();
    for (index, inst) in instructions.iter().enumerate() {
        let keyword = inst.keyword();
        if keyword == "FROM" {
            if let Some(last) = stages.last_mut() {
                last.range.end = index;
            }
            let words: Vec<&str> = inst
                .text
                .split_whitespace()
                .skip(1)
                .filter(|w| !w.starts_with("--"))
                .collect();
            let name = match words.as_slice() {
                [_, as_word, name] if as_word.eq_ignore_ascii_case("as") => {
                    Some(name.to_ascii_lowercase())
                }
                _ => None,
            };
            stages.push(Stage {
                name,
                range: index..instructions.len(),
                uses: words
                    .first()
                    .map(|b| vec![b.to_ascii_lowercase()])
                    .unwrap_or_default(),
            });
        } else if let Some(stage) = stages.last_mut() {
            for word in inst.text.split_whitespace() {
                if let Some(from) = word.to_ascii_lowercase().strip_prefix("--from=") {
                    stage.uses.push(from.to_string());
                }
            }
        }
    }
    if stages.len() < 2 {
        return Ok(instructions);
    }
    let find = |reference: &str| -> Option<usize> {
        stages
            .iter()
            .position(|s| s.name.as_deref() == Some(reference))
            .or_else(|| {
                reference
                    .parse::<usize>()
                    .ok()
                    .filter(|i| *i < stages.len())
            })
    };
    let wanted = match target {
        Some(target) => find(&target.to_ascii_lowercase()).ok_or_else(|| {
            BuildError::Source(format!("the Dockerfile has no stage named {target:?}"))
        })?,
        None => stages.len() - 1,
    };
    let mut needed = BTreeSet::from([wanted]);
    let mut queue = vec![wanted];
    while let Some(index) = queue.pop() {
        for reference in &stages[index].uses {
            if let Some(dep) = find(reference).filter(|d| *d < index) {
                if needed.insert(dep) {
                    queue.push(dep);
                }
            }
        }
    }
    let skipped: Vec<String> = (0..stages.len())
        .filter(|i| !needed.contains(i))
        .map(|i| stages[i].name.clone().unwrap_or_else(|| format!("#{i}")))
        .collect();
    if skipped.is_empty() {
        return Ok(instructions);
    }
    let renumber: BTreeMap<usize, usize> = needed
        .iter()
        .enumerate()
        .map(|(new, old)| (*old, new))
        .collect();
    let mut out: Vec<Instruction> = instructions[..stages[0].range.start].to_vec();
    for index in &needed {
        for inst in &instructions[stages[*index].range.clone()] {
            let mut inst = inst.clone();
            let rewritten: Vec<String> = inst
                .text
                .split(' ')
                .map(
                    |word| match word.strip_prefix("--from=").map(str::parse::<usize>) {
                        Some(Ok(old)) => format!("--from={}", renumber.get(&old).unwrap_or(&old)),
                        _ => word.to_string(),
                    },
                )
                .collect();
            inst.text = rewritten.join(" ");
            out.push(inst);
        }
    }
    notes.push(format!(
        "stages not needed for the {} stage are not built: {}",
        stages[wanted]
            .name
            .clone()
            .unwrap_or_else(|| "last".to_string()),
        skipped.join(", ")
    ));
    Ok(out)
}
