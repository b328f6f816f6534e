//! Picking the next token, with a grammar checked after the fact.
//!
//! llama.cpp's grammar sampler tests every token of the vocabulary against
//! the grammar's stacks (49k tokens for SmolLM2), which made constrained
//! generation ~3.5x slower than free generation. llama.cpp's own
//! `common_sampler_sample` avoids that, and this does the same: sample from
//! the unconstrained distribution, ask the grammar about that one token,
//! and only when it is rejected sample again with the grammar applied to
//! the whole vocabulary first. The result is a token the grammar allows,
//! drawn from the same constrained distribution when the first pick fails.

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;

/// A sampler chain and an optional grammar kept apart from it.
pub(crate) struct Sampling {
    chain: LlamaSampler,
    grammar: Option<LlamaSampler>,
    /// Candidate buffer reused across tokens (one entry per vocabulary token).
    candidates: Vec<LlamaTokenData>,
    /// Tokens whose first pick the grammar rejected (sampled twice).
    pub(crate) resampled: u32,
}

impl Sampling {
    /// `chain` picks a token (it must end with a selecting sampler: greedy
    /// or dist); `grammar`, when given, constrains what may be picked.
    pub(crate) fn new(chain: LlamaSampler, grammar: Option<LlamaSampler>) -> Sampling {
        Sampling {
            chain,
            grammar,
            candidates: Vec::new(),
            resampled: 0,
        }
    }

    /// Picks and accepts the next token from the `idx`-th logits of `ctx`.
    pub(crate) fn sample(&mut self, ctx: &LlamaContext<'_>, idx: i32) -> LlamaToken {
        let Some(grammar) = self.grammar.as_mut() else {
            return self.chain.sample(ctx, idx);
        };
        let logits = ctx.get_logits_ith(idx);
        let mut all = fill(std::mem::take(&mut self.candidates), logits);
        self.chain.apply(&mut all);
        let first = all.selected_token();
        let allowed = first.is_some_and(|token| {
            let mut one = LlamaTokenDataArray::new(vec![LlamaTokenData::new(token, 1.0, 0.0)], false);
            grammar.apply(&mut one);
            one.data.first().is_some_and(|d| d.logit().is_finite())
        });
        let token = match first {
            Some(token) if allowed => token,
            _ => {
                self.resampled += 1;
                all = fill(all.data, logits);
                grammar.apply(&mut all);
                self.chain.apply(&mut all);
                // The grammar always leaves at least end-of-generation.
                all.selected_token().unwrap_or(LlamaToken(0))
            }
        };
        self.candidates = all.data;
        grammar.accept(token);
        self.chain.accept(token);
        token
    }
}

/// `buffer` refilled with one unsorted candidate per logit.
fn fill(mut buffer: Vec<LlamaTokenData>, logits: &[f32]) -> LlamaTokenDataArray {
    buffer.clear();
    buffer.extend(
        logits
            .iter()
            .enumerate()
            .map(|(id, &logit)| LlamaTokenData::new(LlamaToken(id as i32), logit, 0.0)),
    );
    LlamaTokenDataArray::new(buffer, false)
}
