//! AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019) with
//! global gradient-norm clipping, and the exponential moving average of the weights used for
//! sampling (as DiT and most diffusion models do).
//!
//! Written here rather than taken from burn-optim because a checkpoint must resume exactly:
//! burn 0.22's optimiser keys its state by random parameter ids, which safetensors weights do
//! not carry, and it clips gradients per parameter. Here the moments are keyed by the
//! parameter's module path (`blocks.3.attn.qkv.weight`), stored as safetensors beside the
//! weights, and clipping uses the norm over all gradients at once.
//!
//! Update for a parameter `p` with gradient `g` at step `k` (1-based):
//! ```text
//! m = b1 m + (1 - b1) g          v = b2 v + (1 - b2) g^2
//! p = p - lr (wd p [matrices only] + (m / (1 - b1^k)) / (sqrt(v / (1 - b2^k)) + eps))
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;
use safetensors::tensor::{Dtype, TensorView};

use crate::config::OptimConfig;
use crate::error::{Result, TrainError};

/// Module path tracking shared by the visitors and mappers below.
#[derive(Default)]
struct PathStack(Vec<String>);

impl PathStack {
    fn enter(&mut self, name: &str) {
        self.0.push(name.to_string());
    }
    fn exit(&mut self) {
        self.0.pop();
    }
    fn key(&self) -> String {
        self.0.join(".")
    }
}

/// `[..]` -> `[numel]`.
fn flat<const D: usize>(t: Tensor<D>) -> Tensor<1> {
    let n = t.shape().num_elements();
    t.reshape([n])
}

fn to_vec(t: Tensor<1>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 data")
}

/// Sum of squared gradients over the whole module.
struct GradNorm<'a> {
    grads: &'a GradientsParams,
    sum: f64,
}

impl ModuleVisitor for GradNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            self.sum += g.powi_scalar(2).sum().into_scalar::<f64>();
        }
    }
}

/// First and second moments of one parameter, flattened.
#[derive(Clone)]
struct Moments {
    m: Tensor<1>,
    v: Tensor<1>,
}

/// The optimiser state.
pub struct AdamW {
    cfg: OptimConfig,
    /// Updates done so far (for bias correction).
    pub steps: u64,
    moments: BTreeMap<String, Moments>,
}

struct StepMapper<'a> {
    opt: &'a mut AdamW,
    grads: &'a mut GradientsParams,
    path: PathStack,
    lr: f64,
    clip_scale: f64,
}

impl ModuleMapper for StepMapper<'_> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.exit();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let key = self.path.key();
        let cfg = &self.opt.cfg;
        let require_grad = tensor.is_require_grad();
        let p = tensor.inner();
        let shape = p.shape();
        let g = flat(grad).mul_scalar(self.clip_scale);
        let Moments { m, v } = self.opt.moments.remove(&key).unwrap_or_else(|| Moments {
            m: g.zeros_like(),
            v: g.zeros_like(),
        });
        let m = m.mul_scalar(cfg.beta1) + g.clone().mul_scalar(1.0 - cfg.beta1);
        let v = v.mul_scalar(cfg.beta2) + g.powi_scalar(2).mul_scalar(1.0 - cfg.beta2);
        let k = self.opt.steps as i32;
        let (c1, c2) = (1.0 - cfg.beta1.powi(k), 1.0 - cfg.beta2.powi(k));
        let update =
            m.clone().div_scalar(c1) / (v.clone().div_scalar(c2).sqrt().add_scalar(cfg.eps));
        // Decoupled weight decay on matrices only (not on biases, norms or learned tokens).
        let decay = if D >= 2 && !key.starts_with("cond.") && !key.starts_with("pos_table") {
            cfg.weight_decay
        } else {
            0.0
        };
        let p = flat(p).mul_scalar(1.0 - self.lr * decay) - update.mul_scalar(self.lr);
        self.opt.moments.insert(key, Moments { m, v });
        let mut p = Tensor::<D>::from_inner(p.reshape(shape));
        if require_grad {
            p = p.require_grad();
        }
        Param::from_mapped_value(id, p, mapper)
    }
}

impl AdamW {
    pub fn new(cfg: &OptimConfig) -> Self {
        Self {
            cfg: cfg.clone(),
            steps: 0,
            moments: BTreeMap::new(),
        }
    }

    /// One update of `module` with `grads` at learning rate `lr`; returns the updated module and
    /// the gradient norm before clipping.
    pub fn step<M: Module>(&mut self, module: M, mut grads: GradientsParams, lr: f64) -> (M, f64) {
        let mut norm = GradNorm {
            grads: &grads,
            sum: 0.0,
        };
        module.visit(&mut norm);
        let norm = norm.sum.sqrt();
        let clip_scale = if self.cfg.grad_clip > 0.0 && norm > self.cfg.grad_clip {
            self.cfg.grad_clip / norm
        } else {
            1.0
        };
        self.steps += 1;
        let mut mapper = StepMapper {
            opt: self,
            grads: &mut grads,
            path: PathStack::default(),
            lr,
            clip_scale,
        };
        (module.map(&mut mapper), norm)
    }

    /// Writes the moments and the step count as safetensors (`m.PATH`, `v.PATH`, `steps`).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut buffers: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for (key, mo) in &self.moments {
            for (prefix, t) in [("m", &mo.m), ("v", &mo.v)] {
                let v = to_vec(t.clone());
                buffers.push((
                    format!("{prefix}.{key}"),
                    vec![v.len()],
                    v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                ));
            }
        }
        let steps = self.steps.to_le_bytes().to_vec();
        let mut views: Vec<(String, TensorView)> = buffers
            .iter()
            .map(|(n, s, b)| {
                (
                    n.clone(),
                    TensorView::new(Dtype::F32, s.clone(), b).expect("sizes match"),
                )
            })
            .collect();
        views.push((
            "steps".into(),
            TensorView::new(Dtype::U64, vec![1], &steps).expect("one u64"),
        ));
        let bytes = safetensors::serialize(views, None).map_err(|e| TrainError::Checkpoint {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        crate::checkpoint::write_file(path, &bytes)
    }

    /// Reads what [`AdamW::save`] wrote.
    pub fn load(cfg: &OptimConfig, path: &Path, device: &Device) -> Result<Self> {
        let bad = |detail: String| TrainError::Checkpoint {
            path: path.to_path_buf(),
            detail,
        };
        let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let mut opt = Self::new(cfg);
        // safetensors does not keep tensor order: read everything, then pair m with v.
        let (mut ms, mut vs) = (BTreeMap::new(), BTreeMap::new());
        for (name, view) in st.tensors() {
            if name == "steps" {
                let b: [u8; 8] = view
                    .data()
                    .try_into()
                    .map_err(|_| bad("steps is not one u64".into()))?;
                opt.steps = u64::from_le_bytes(b);
                continue;
            }
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let t = Tensor::<1>::from_floats(values.as_slice(), device);
            match name.split_once('.') {
                Some(("m", key)) => ms.insert(key.to_string(), t),
                Some(("v", key)) => vs.insert(key.to_string(), t),
                _ => return Err(bad(format!("unexpected tensor {name}"))),
            };
        }
        for (key, m) in ms {
            let v = vs
                .remove(&key)
                .ok_or_else(|| bad(format!("m.{key} without v.{key}")))?;
            opt.moments.insert(key, Moments { m, v });
        }
        if let Some(key) = vs.keys().next() {
            return Err(bad(format!("v.{key} without m.{key}")));
        }
        Ok(opt)
    }
}

/// Collects every float parameter of a module, flattened, by path.
#[derive(Default)]
struct Collect {
    path: PathStack,
    values: BTreeMap<String, Tensor<1>>,
}

impl ModuleVisitor for Collect {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.exit();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.values
            .insert(self.path.key(), flat(param.val().inner()));
    }
}

/// `ema = decay ema + (1 - decay) p`, parameter by parameter (matched by path).
struct EmaMapper {
    path: PathStack,
    values: BTreeMap<String, Tensor<1>>,
    decay: f64,
}

impl ModuleMapper for EmaMapper {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.exit();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, ema, mapper) = param.consume();
        let key = self.path.key();
        let new = match self.values.remove(&key) {
            Some(p) => {
                let shape = ema.shape();
                (flat(ema).mul_scalar(self.decay) + p.mul_scalar(1.0 - self.decay)).reshape(shape)
            }
            None => ema,
        };
        Param::from_mapped_value(id, new, mapper)
    }
}

/// The EMA decay at optimiser step `step` (1-based), warmed up as
/// `min(decay, (1 + step) / (10 + step))` so early averages do not hold on to the random
/// initialisation.
pub fn ema_decay(decay: f64, step: u64) -> f64 {
    decay.min((1.0 + step as f64) / (10.0 + step as f64))
}

/// Moves `ema` towards `model` (on any device; `ema` lives on the plain device).
pub fn ema_update<M: Module>(ema: M, model: &M, decay: f64) -> M {
    let mut collect = Collect::default();
    model.visit(&mut collect);
    ema.map(&mut EmaMapper {
        path: PathStack::default(),
        values: collect.values,
        decay,
    })
}

/// A copy of `model` on the plain (inference) device with fresh parameter ids.
pub fn detached_copy<M: Module>(model: &M, device: &Device) -> M {
    struct Fresh;
    impl ModuleMapper for Fresh {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let (_, t, mapper) = param.consume();
            Param::from_mapped_value(ParamId::new(), t.inner(), mapper)
        }
    }
    model.valid().to_device(device).map(&mut Fresh)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};

    #[derive(Module, Debug)]
    struct Two {
        a: Linear,
        b: Linear,
    }

    fn cfg() -> OptimConfig {
        OptimConfig {
            batch_size: 1,
            steps: 10,
            lr: 0.1,
            warmup_steps: 0,
            min_lr_ratio: 1.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            grad_clip: 0.0,
            ema_decay: 0.5,
        }
    }

    fn weights(m: &Two) -> Vec<f32> {
        let mut c = Collect::default();
        m.visit(&mut c);
        c.values.into_values().flat_map(to_vec).collect()
    }

    #[test]
    fn first_adam_step_moves_each_weight_by_lr_against_its_gradient_sign() {
        let device = Device::flex().autodiff();
        let model = Two {
            a: LinearConfig::new(3, 2).init(&device),
            b: LinearConfig::new(2, 1).init(&device),
        };
        let before = weights(&model);
        let x = Tensor::<2>::from_floats([[1.0, -2.0, 0.5]], &device);
        let loss = model.b.forward(model.a.forward(x)).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let mut opt = AdamW::new(&cfg());
        let (model, norm) = opt.step(model, grads, 0.1);
        assert!(norm > 0.0);
        let after = weights(&model);
        // Bias-corrected first step: m_hat / sqrt(v_hat) = sign(g), so |delta| = lr.
        for (b, a) in before.iter().zip(&after) {
            let d = (a - b).abs();
            assert!((d - 0.1).abs() < 1e-4 || d < 1e-6, "delta {d}");
        }
        // Saving and loading restores the moments exactly.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("optim.safetensors");
        opt.save(&path).unwrap();
        let back = AdamW::load(&cfg(), &path, &Device::flex()).unwrap();
        assert_eq!(back.steps, 1);
        assert_eq!(back.moments.len(), opt.moments.len());
        for (k, m) in &opt.moments {
            assert_eq!(
                to_vec(m.v.clone()),
                to_vec(back.moments[k].v.clone()),
                "{k}"
            );
        }
    }

    #[test]
    fn ema_moves_halfway_with_decay_one_half() {
        let device = Device::flex();
        let two = || Two {
            a: LinearConfig::new(2, 2).init(&device),
            b: LinearConfig::new(2, 1).init(&device),
        };
        let (start, model) = (two(), two());
        let ema = ema_update(detached_copy(&start, &device), &model, 0.5);
        let (s, m, e) = (weights(&start), weights(&model), weights(&ema));
        assert!(s.iter().zip(&m).any(|(a, b)| (a - b).abs() > 1e-3));
        for i in 0..e.len() {
            assert!((e[i] - 0.5 * (s[i] + m[i])).abs() < 1e-6, "{i}");
        }
        assert!((ema_decay(0.999, 0) - 0.1).abs() < 1e-12);
        assert_eq!(ema_decay(0.9, 1000), 0.9);
    }
}
