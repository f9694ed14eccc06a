//! LongBench's published prompt templates and answer budgets, as data.
//!
//! v1: THUDM/LongBench `config/dataset2prompt.json` (templates with
//! `{context}` and `{input}` placeholders) and `config/dataset2maxlen.json`
//! (the number of new tokens each task asks the model for). v2:
//! THUDM/LongBench-v2 `prompts/0shot.txt` and the 128 new tokens its
//! prediction script requests without chain-of-thought.

/// One LongBench v1 task: its prompt template and answer budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Task {
    pub name: &'static str,
    /// New tokens the benchmark requests for this task.
    pub max_new_tokens: u32,
    /// The prompt, with `{context}` and `{input}` placeholders.
    pub template: &'static str,
}

/// Every LongBench v1 task, in the order the benchmark lists them.
pub const V1_TASKS: &[Task] = &[
    Task {
        name: "narrativeqa",
        max_new_tokens: 128,
        template: "You are given a story, which can be either a novel or a movie script, and a question. Answer the question as concisely as you can, using a single phrase if possible. Do not provide any explanation.\n\nStory: {context}\n\nNow, answer the question based on the story as concisely as you can, using a single phrase if possible. Do not provide any explanation.\n\nQuestion: {input}\n\nAnswer:",
    },
    Task {
        name: "qasper",
        max_new_tokens: 128,
        template: "You are given a scientific article and a question. Answer the question as concisely as you can, using a single phrase or sentence if possible. If the question cannot be answered based on the information in the article, write \"unanswerable\". If the question is a yes/no question, answer \"yes\", \"no\", or \"unanswerable\". Do not provide any explanation.\n\nArticle: {context}\n\n Answer the question based on the above article as concisely as you can, using a single phrase or sentence if possible. If the question cannot be answered based on the information in the article, write \"unanswerable\". If the question is a yes/no question, answer \"yes\", \"no\", or \"unanswerable\". Do not provide any explanation.\n\nQuestion: {input}\n\nAnswer:",
    },
    Task {
        name: "multifieldqa_en",
        max_new_tokens: 64,
        template: "Read the following text and answer briefly.\n\n{context}\n\nNow, answer the following question based on the above text, only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:",
    },
    Task {
        name: "multifieldqa_zh",
        max_new_tokens: 64,
        template: "阅读以下文字并用中文简短回答：\n\n{context}\n\n现在请基于上面的文章回答下面的问题，只告诉我答案，不要输出任何其他字词。\n\n问题：{input}\n回答：",
    },
    Task {
        name: "hotpotqa",
        max_new_tokens: 32,
        template: "Answer the question based on the given passages. Only give me the answer and do not output any other words.\n\nThe following are given passages.\n{context}\n\nAnswer the question based on the given passages. Only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:",
    },
    Task {
        name: "2wikimqa",
        max_new_tokens: 32,
        template: "Answer the question based on the given passages. Only give me the answer and do not output any other words.\n\nThe following are given passages.\n{context}\n\nAnswer the question based on the given passages. Only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:",
    },
    Task {
        name: "musique",
        max_new_tokens: 32,
        template: "Answer the question based on the given passages. Only give me the answer and do not output any other words.\n\nThe following are given passages.\n{context}\n\nAnswer the question based on the given passages. Only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:",
    },
    Task {
        name: "dureader",
        max_new_tokens: 128,
        template: "请基于给定的文章回答下述问题。\n\n文章：{context}\n\n请基于上述文章回答下面的问题。\n\n问题：{input}\n回答：",
    },
    Task {
        name: "gov_report",
        max_new_tokens: 512,
        template: "You are given a report by a government agency. Write a one-page summary of the report.\n\nReport:\n{context}\n\nNow, write a one-page summary of the report.\n\nSummary:",
    },
    Task {
        name: "qmsum",
        max_new_tokens: 512,
        template: "You are given a meeting transcript and a query containing a question or instruction. Answer the query in one or more sentences.\n\nTranscript:\n{context}\n\nNow, answer the query based on the above meeting transcript in one or more sentences.\n\nQuery: {input}\nAnswer:",
    },
    Task {
        name: "multi_news",
        max_new_tokens: 512,
        template: "You are given several news passages. Write a one-page summary of all news. \n\nNews:\n{context}\n\nNow, write a one-page summary of all the news.\n\nSummary:",
    },
    Task {
        name: "vcsum",
        max_new_tokens: 512,
        template: "下面有一段会议记录，请你阅读后，写一段总结，总结会议的内容。\n会议记录：\n{context}\n\n会议总结：",
    },
    Task {
        name: "trec",
        max_new_tokens: 64,
        template: "Please determine the type of the question below. Here are some examples of questions.\n\n{context}\n{input}",
    },
    Task {
        name: "triviaqa",
        max_new_tokens: 32,
        template: "Answer the question based on the given passage. Only give me the answer and do not output any other words. The following are some examples.\n\n{context}\n\n{input}",
    },
    Task {
        name: "samsum",
        max_new_tokens: 128,
        template: "Summarize the dialogue into a few short sentences. The following are some examples.\n\n{context}\n\n{input}",
    },
    Task {
        name: "lsht",
        max_new_tokens: 64,
        template: "请判断给定新闻的类别，下面是一些例子。\n\n{context}\n{input}",
    },
    Task {
        name: "passage_count",
        max_new_tokens: 32,
        template: "There are some paragraphs below sourced from Wikipedia. Some of them may be duplicates. Please carefully read these paragraphs and determine how many unique paragraphs there are after removing duplicates. In other words, how many non-repeating paragraphs are there in total?\n\n{context}\n\nPlease enter the final count of unique paragraphs after removing duplicates. The output format should only contain the number, such as 1, 2, 3, and so on.\n\nThe final answer is: ",
    },
    Task {
        name: "passage_retrieval_en",
        max_new_tokens: 32,
        template: "Here are 30 paragraphs from Wikipedia, along with an abstract. Please determine which paragraph the abstract is from.\n\n{context}\n\nThe following is an abstract.\n\n{input}\n\nPlease enter the number of the paragraph that the abstract is from. The answer format must be like \"Paragraph 1\", \"Paragraph 2\", etc.\n\nThe answer is: ",
    },
    Task {
        name: "passage_retrieval_zh",
        max_new_tokens: 32,
        template: "以下是若干段落文字，以及其中一个段落的摘要。请确定给定的摘要出自哪一段。\n\n{context}\n\n下面是一个摘要\n\n{input}\n\n请输入摘要所属段落的编号。答案格式必须是\"段落1\"，\"段落2\"等格式\n\n答案是：",
    },
    Task {
        name: "lcc",
        max_new_tokens: 64,
        template: "Please complete the code given below. \n{context}Next line of code:\n",
    },
    Task {
        name: "repobench-p",
        max_new_tokens: 64,
        template: "Please complete the code given below. \n{context}{input}Next line of code:\n",
    },
];

/// The template and budget of a task this table does not know: the
/// context, then the question, then an answer cue.
pub const GENERIC: Task = Task {
    name: "generic",
    max_new_tokens: 128,
    template: "{context}\n\nQuestion: {input}\nAnswer:",
};

/// LongBench v2's 0-shot multiple-choice prompt, with `$DOC$`, `$Q$` and
/// `$C_A$`..`$C_D$` placeholders.
pub const V2_TEMPLATE: &str = "Please read the following text and answer the question below.\n\n<text>\n$DOC$\n</text>\n\nWhat is the correct answer to this question: $Q$\nChoices:\n(A) $C_A$\n(B) $C_B$\n(C) $C_C$\n(D) $C_D$\n\nFormat your response as follows: \"The correct answer is (insert answer here)\".";

/// New tokens LongBench v2 requests for a 0-shot answer.
pub const V2_MAX_NEW_TOKENS: u32 = 128;

/// The v1 task called `name`; LongBench-E names (`qasper_e`) map to their
/// base task.
pub fn v1_task(name: &str) -> Option<&'static Task> {
    let find = |n: &str| V1_TASKS.iter().find(|t| t.name == n);
    find(name).or_else(|| name.strip_suffix("_e").and_then(find))
}

/// Fills `template`'s placeholders in one pass: text substituted for one
/// placeholder is never searched for another, so a context that happens to
/// contain `{input}` stays as it is.
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let extra: usize = values.iter().map(|(_, v)| v.len()).sum();
    let mut out = String::with_capacity(template.len() + extra);
    let mut rest = template;
    'scan: while !rest.is_empty() {
        for (key, value) in values {
            if let Some(after) = rest.strip_prefix(key) {
                out.push_str(value);
                rest = after;
                continue 'scan;
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

/// A v1 prompt.
pub fn v1_prompt(task: &Task, context: &str, input: &str) -> String {
    fill(task.template, &[("{context}", context), ("{input}", input)])
}

/// The fields of a v2 question.
pub struct V2Question<'a> {
    pub context: &'a str,
    pub question: &'a str,
    pub choices: [&'a str; 4],
}

/// A v2 prompt; like the benchmark, every field is trimmed first.
pub fn v2_prompt(q: &V2Question<'_>) -> String {
    let [a, b, c, d] = q.choices.map(str::trim);
    fill(
        V2_TEMPLATE,
        &[
            ("$DOC$", q.context.trim()),
            ("$Q$", q.question.trim()),
            ("$C_A$", a),
            ("$C_B$", b),
            ("$C_C$", c),
            ("$C_D$", d),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_v1_task_has_its_placeholders_and_budget() {
        assert_eq!(V1_TASKS.len(), 21);
        for t in V1_TASKS {
            assert!(t.template.contains("{context}"), "{}", t.name);
            assert!(t.max_new_tokens >= 32, "{}", t.name);
        }
        // Tasks whose template has no question slot: the whole prompt is the context.
        let no_input = ["gov_report", "multi_news", "vcsum", "passage_count", "lcc"];
        for t in V1_TASKS {
            assert_eq!(
                t.template.contains("{input}"),
                !no_input.contains(&t.name),
                "{}",
                t.name
            );
        }
    }

    #[test]
    fn published_budgets() {
        let budget = |n| v1_task(n).map(|t| t.max_new_tokens);
        assert_eq!(budget("narrativeqa"), Some(128));
        assert_eq!(budget("hotpotqa"), Some(32));
        assert_eq!(budget("gov_report"), Some(512));
        assert_eq!(budget("trec"), Some(64));
        assert_eq!(budget("samsum"), Some(128));
        assert_eq!(budget("repobench-p"), Some(64));
        assert_eq!(budget("qasper_e"), Some(128));
        assert_eq!(budget("nope"), None);
        assert_eq!(budget("nope_e"), None);
    }

    #[test]
    fn fill_is_single_pass() {
        let t = v1_task("trec").expect("trec");
        let p = v1_prompt(t, "ctx with {input} inside", "Q?");
        assert!(p.ends_with("ctx with {input} inside\nQ?"));
        assert_eq!(fill("a{x}b{x}", &[("{x}", "é")]), "aébé");
        assert_eq!(fill("{context}", &[("{context}", "")]), "");
    }

    #[test]
    fn v2_prompt_trims_and_fills() {
        let p = v2_prompt(&V2Question {
            context: "  doc  ",
            question: " q? ",
            choices: ["a", " b", "c ", "$Q$"],
        });
        assert!(p.contains("<text>\ndoc\n</text>"));
        assert!(p.contains("question: q?\nChoices:\n(A) a\n(B) b\n(C) c\n(D) $Q$\n"));
    }
}
