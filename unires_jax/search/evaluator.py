"""Scoring weight candidates on one image: sample, decode, score with Q, log, track the best.

Every strategy talks to the model through one `Evaluator`. It owns the resumable log: a
candidate whose score is already logged (same image, seed, steps, stage, run fingerprint and
weights) is not sampled again, and every new score is appended (and fsynced) batch by batch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from unires_jax.quality.base import QualityModel, objective
from unires_jax.restore import deblur as deblur_lib
from unires_jax.search.engine import CandidateSampler
from unires_jax.search.features import FEATURE_NAMES, degradation_features
from unires_jax.search.log import CandidateLog, candidate_key, weights_dict


def run_fingerprint(sampler: CandidateSampler, quality: QualityModel) -> str:
    """A short hash of everything besides image, seed, steps and weights that changes a score:
    the model (its source, configs and a checksum of a few parameter tensors), the experts,
    the inference settings and the quality model."""
    restorer = sampler.restorer
    leaves = jax.tree.leaves(nnx.state(restorer.ldm.unet)) + jax.tree.leaves(
        nnx.state(restorer.ldm.vae)
    )
    arrays = [
        leaf for leaf in leaves if hasattr(leaf, "dtype") and hasattr(leaf, "shape")
    ]
    checksum = [
        float(jnp.sum(jnp.abs(a.astype(jnp.float32)))) for a in arrays[:3] + arrays[-3:]
    ]
    s = restorer.settings
    quality_source = getattr(getattr(quality, "model", None), "source", "")
    text = "|".join(
        str(v)
        for v in (
            restorer.ldm.source,
            [f"{c:.6e}" for c in checksum],
            # The configs too: e.g. the attention implementation changes the floats.
            restorer.ldm.unet.cfg,
            restorer.ldm.vae.cfg,
            restorer.experts,
            sampler._total_experts,
            s.eta,
            s.color_fix,
            s.downlq_factor,
            s.quality_words,
            quality.name,
            quality_source,
            getattr(quality, "crop_border", ""),
            # Only when upscaling, so logs written before the option existed stay valid.
            *((f"upscale {s.upscale}", s.consistency) if s.upscale > 1 else ()),
            # Deblurring changes the images of blurred inputs: logs made without it do not count.
            *(("deblur",) if s.deblur and s.upscale == 1 else ()),
        )
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclasses.dataclass
class SearchResult:
    """What a search found and what it cost.

    Attributes:
      weights: the chosen weights by expert name (nonzero entries).
      score: Q of the chosen candidate's restored image (raw, e.g. NIQE: lower is better).
      objective: the same as higher-is-better (`quality.objective`).
      image: `[H, W, 3]` float32 restored with the chosen weights (None if not requested).
      candidates_evaluated: distinct weight vectors scored at any stage (cached ones included).
      candidates_finished: distinct weight vectors sampled to the end and scored.
      unet_evaluations: UNet image-evaluations spent by this call (logged scores cost none).
      seconds: wall time of this call.
      strategy: the strategy name.
      quality: the quality model name.
      records: every score this call saw (logged or new), as log records.
      log_path: the candidate log, if any.
      deblur: what `RestoreSettings.deblur` fitted to the image and whether it was used
        (`restore.deblur.psf_record`), or None when no PSF was fitted.
      finished_images: with `keep_images`, (weights by expert name, `[H, W, 3]` image) of
        every candidate this call finished (not those whose score came from the log).
    """

    weights: dict[str, float]
    score: float
    objective: float
    image: np.ndarray | None
    candidates_evaluated: int
    candidates_finished: int
    unet_evaluations: int
    seconds: float
    strategy: str
    quality: str
    records: list[dict[str, Any]]
    log_path: str | None = None
    finished_images: list[tuple[dict[str, float], np.ndarray]] | None = None
    deblur: dict[str, Any] | None = None

    def single_expert_images(self) -> dict[str, np.ndarray]:
        """The finished images of one-hot candidates (weight 1 on one expert), by expert name."""
        out: dict[str, np.ndarray] = {}
        for weights, image in self.finished_images or []:
            nonzero = {e: w for e, w in weights.items() if w}
            if len(nonzero) == 1 and next(iter(nonzero.values())) == 1.0:
                out[next(iter(nonzero))] = image
        return out


class Evaluator:
    """Scores candidates for one image with one sampler, quality model, seed and step count.

    Args:
      sampler: the sharded sampler (model and devices).
      image: `[H, W, 3]` uint8/uint16/float image.
      quality: the quality model Q.
      steps: DDIM steps of a finished sample.
      seed: start-noise seed.
      log_dir: folder of per-image JSON-lines logs (None: no log, no resume).
      strategy: recorded with every score.
      image_path: recorded in the log's image line (for the record only).
      keep_images: keep every finished candidate's image for the result (memory grows with
        the candidates; for callers that report the candidates, such as `unires demo`).
    """

    def __init__(
        self,
        sampler: CandidateSampler,
        image: np.ndarray,
        quality: QualityModel,
        *,
        steps: int,
        seed: int = 0,
        log_dir: str | pathlib.Path | None = None,
        strategy: str = "",
        image_path: str | None = None,
        keep_images: bool = False,
    ):
        self.t0 = time.perf_counter()
        self._kept: list[tuple[dict[str, float], np.ndarray]] | None = (
            [] if keep_images else None
        )
        self.sampler = sampler
        self.experts = sampler.experts
        self.quality = quality
        self.steps = int(steps)
        self.seed = int(seed)
        self.strategy = strategy
        self.image = image
        self.target = sampler.prepare(image)
        self.height, self.width = (
            self.target.prepared.height,
            self.target.prepared.width,
        )
        self.run = run_fingerprint(sampler, quality)
        self.log = None
        if log_dir is not None:
            self.log = CandidateLog(pathlib.Path(log_dir) / f"{self.target.hash}.jsonl")
            if jax.process_index() == 0:
                self.log.add_image(
                    {
                        "image": self.target.hash,
                        "shape": [self.height, self.width],
                        "path": image_path,
                        "experts": list(self.experts),
                        "features": dict(
                            zip(FEATURE_NAMES, degradation_features(image).tolist())
                        ),
                    }
                )
        self._seen: dict[tuple, dict[str, Any]] = {}
        # Finished latents of single experts (by expert index), for `score_mixtures`.
        self.expert_latents: dict[int, np.ndarray] = {}
        self._best: dict[str, Any] | None = None
        self._best_image: np.ndarray | None = None
        self._evals_before = sampler.unet_evaluations

    # --- keys and records --------------------------------------------------------------------

    def _key(self, vector: np.ndarray, stage: int) -> tuple:
        return candidate_key(
            self.target.hash,
            self.seed,
            self.steps,
            stage,
            self.run,
            weights_dict(vector, self.experts),
        )

    def _record(
        self, vector: np.ndarray, stage: int, score: float, obj: float
    ) -> dict[str, Any]:
        return {
            "image": self.target.hash,
            "seed": self.seed,
            "steps": self.steps,
            "stage": int(stage),
            "run": self.run,
            "quality": self.quality.name,
            "strategy": self.strategy,
            "weights": weights_dict(vector, self.experts),
            "score": float(score),
            "objective": float(obj),
        }

    def _lookup(self, key: tuple) -> dict[str, Any] | None:
        if key in self._seen:
            return self._seen[key]
        return self.log.lookup(key) if self.log is not None else None

    def _note(
        self, key: tuple, record: dict[str, Any], image: np.ndarray | None
    ) -> None:
        self._seen[key] = record
        if record["stage"] != self.steps:
            return
        if self._kept is not None and image is not None:
            self._kept.append((dict(record["weights"]), image))
        if self._best is None or _better(record["objective"], self._best["objective"]):
            self._best, self._best_image = record, image

    # --- evaluation --------------------------------------------------------------------------

    def evaluate(
        self,
        weights: np.ndarray,
        *,
        x: np.ndarray | None = None,
        start: int = 0,
        stop: int | None = None,
        final_latents: bool = False,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Samples steps [start, stop) for each weight vector and scores the result.

        A finished sample (stop == steps) is scored on its decoded image; an unfinished one on
        its decoded x0 prediction, recorded as stage `stop`. Scores found in the log are reused.

        Args:
          weights: `[N, K]` user weights.
          x: `[N, h, w, c]` latents entering step `start` (when start > 0).
          start, stop: the step range (stop defaults to `steps`).
          final_latents: also return the latents of finished candidates (logged ones are
            sampled again for them).

        Returns:
          (`[N]` objectives (higher is better), `[N, h, w, c]` latents after step stop - 1,
          or None when stop == steps and not `final_latents`).
        """
        weights = np.asarray(weights, np.float64)
        stop = self.steps if stop is None else int(stop)
        final = stop == self.steps
        keys = [self._key(w, stop) for w in weights]
        objectives = np.full(len(weights), np.nan)
        for i, key in enumerate(keys):
            record = self._lookup(key)
            if record is not None:
                objectives[i] = record["objective"]
                self._note(key, record, None)
        latents = (
            None
            if final and not final_latents
            else np.zeros((len(weights),) + self._latent_shape(), np.float32)
        )
        if latents is not None:
            # Continuations need the latents even when the score is logged.
            known = np.flatnonzero(~np.isnan(objectives))
            if known.size:
                batch = self.sampler.sample(
                    self.target,
                    weights[known],
                    steps=self.steps,
                    seed=self.seed,
                    x=None if x is None else x[known],
                    start=start,
                    stop=stop,
                    decode=None,
                )
                latents[known] = batch.latents
        todo_keys: dict[tuple, int] = {}
        for i in np.flatnonzero(np.isnan(objectives)):
            todo_keys.setdefault(keys[i], int(i))
        todo = np.array(sorted(todo_keys.values()), np.int64)
        if todo.size:
            for batch in self.sampler.run(
                self.target,
                weights[todo],
                steps=self.steps,
                seed=self.seed,
                x=None if x is None else x[todo],
                start=start,
                stop=stop,
                decode="latents" if final else "x0",
            ):
                rows = todo[batch.indices]
                scores = np.asarray(self.quality.score(batch.images), np.float64)
                objs = objective(self.quality, scores)
                records = [
                    self._record(weights[i], stop, s, o)
                    for i, s, o in zip(rows, scores, objs)
                ]
                if self.log is not None and jax.process_index() == 0:
                    self.log.add_candidates(records)
                for j, (i, record) in enumerate(zip(rows, records)):
                    objectives[i] = record["objective"]
                    self._note(keys[i], record, batch.images[j] if final else None)
                    if latents is not None:
                        latents[i] = batch.latents[j]
        # Duplicated weight vectors share the first copy's score.
        for i, key in enumerate(keys):
            if np.isnan(objectives[i]) and key in self._seen:
                objectives[i] = self._seen[key]["objective"]
                if latents is not None:
                    latents[i] = latents[todo_keys[key]]
        return objectives, latents

    def finish_experts(self, experts: np.ndarray) -> np.ndarray:
        """Finishes and scores each expert alone, keeping its final latents in
        `expert_latents` (the basis of `score_mixtures`); returns their `[E]` objectives."""
        experts = np.asarray(experts, np.int64)
        singles = np.eye(len(self.experts))[experts]
        objectives, latents = self.evaluate(singles, final_latents=True)
        self.expert_latents.update(zip(experts.tolist(), latents))
        return objectives

    def mixture_proxy(self, weights: np.ndarray) -> np.ndarray | None:
        """`score_mixtures` over the finished experts, or None when `weights` use an expert
        that has not been finished alone."""
        weights = np.asarray(weights, np.float64)
        used = np.flatnonzero(np.any(weights != 0, axis=0))
        if not set(used.tolist()) <= set(self.expert_latents):
            return None
        basis = np.stack([self.expert_latents[int(k)] for k in used])
        return self.score_mixtures(weights, used, basis)

    def score_mixtures(
        self, weights: np.ndarray, experts: np.ndarray, expert_latents: np.ndarray
    ) -> np.ndarray:
        """Scores each weight vector on the decoded weighted sum of finished expert latents.

        A proxy for the finished candidate that costs no UNet evaluation (decoding and Q only):
        with the same start noise, a mixture's trajectory stays close to the same mixture of
        the single experts' trajectories. Recorded (and resumed) as stage 0.

        Args:
          weights: `[N, K]` user weights, nonzero only on `experts`.
          experts: `[E]` expert indices whose finished latents are given.
          expert_latents: `[E, h, w, c]` their finished latents.

        Returns:
          `[N]` objectives (higher is better).
        """
        weights = np.asarray(weights, np.float64)
        others = np.delete(weights, experts, axis=1)
        if np.any(others != 0):
            raise ValueError(
                "score_mixtures: weights are nonzero on experts without latents"
            )
        keys = [self._key(w, 0) for w in weights]
        objectives = np.full(len(weights), np.nan)
        for i, key in enumerate(keys):
            record = self._lookup(key)
            if record is not None:
                objectives[i] = record["objective"]
                self._seen[key] = record
        todo = np.flatnonzero(np.isnan(objectives))
        for rows, _, scores, objs in self._mixture_scores(
            weights[todo], experts, expert_latents
        ):
            rows = todo[rows]
            records = [
                self._record(weights[i], 0, q, o) for i, q, o in zip(rows, scores, objs)
            ]
            if self.log is not None and jax.process_index() == 0:
                self.log.add_candidates(records)
            for i, record in zip(rows, records):
                objectives[i] = record["objective"]
                self._seen[keys[i]] = record
        return objectives

    def _mixture_scores(self, weights, experts, basis):
        """Yields (rows, images, raw scores, objectives) for chunks of `weights`, each scored on the
        decoded weighted sum of `basis` ([E, h, w, c], one latent per entry of `experts`)."""
        basis = np.asarray(basis, np.float32)
        chunk = 8 * self.sampler.devices
        for lo in range(0, len(weights), chunk):
            rows = np.arange(lo, min(lo + chunk, len(weights)))
            mixed = np.einsum(
                "ne,e...->n...", weights[rows][:, experts].astype(np.float32), basis
            )
            images = self.sampler.decode(self.target, mixed)
            scores = np.asarray(self.quality.score(images), np.float64)
            yield rows, images, scores, objective(self.quality, scores)

    # --- local linearisation around a finished candidate ---------------------------------------

    def last_step_basis_cost(self, vector: np.ndarray, experts: np.ndarray) -> int:
        """UNet evaluations `last_step_basis` would spend."""
        vector = np.asarray(vector, np.float64)[None]
        singles = np.eye(len(self.experts))[np.asarray(experts, np.int64)]
        last = self.steps - 1
        if last == 0:
            return self.cost(singles, start=0, stop=1)
        return self.cost(vector, start=0, stop=last) + self.cost(singles, start=last)

    def last_step_basis(self, vector: np.ndarray, experts: np.ndarray) -> np.ndarray:
        """Samples one candidate up to its last DDIM step, then takes that step once per expert
        in `experts` (weight 1 on it) from the same latent: `[E, h, w, c]` final latents.

        The DDIM step is affine in the noise prediction, so any weight vector w (summing to 1,
        nonzero only on `experts`) stepped from this latent ends at sum_e w_e basis_e: exactly
        the candidate itself, and for its neighbours the finished sample with the last step's
        input frozen at the candidate's (`local_proxy`). Costs the candidate's own steps but
        the last, plus one evaluation per expert.
        """
        vector = np.asarray(vector, np.float64)
        experts = np.asarray(experts, np.int64)
        outside = np.delete(vector, experts)
        if np.any(outside != 0):
            raise ValueError(
                "last_step_basis: the vector is nonzero on experts outside `experts`"
            )
        last = self.steps - 1
        x = None
        if last > 0:
            x = self.sampler.sample(
                self.target,
                vector[None],
                steps=self.steps,
                seed=self.seed,
                start=0,
                stop=last,
                decode=None,
            ).latents
            x = np.broadcast_to(x, (len(experts),) + x.shape[1:])
        singles = np.eye(len(self.experts))[experts]
        return self.sampler.sample(
            self.target,
            singles,
            steps=self.steps,
            seed=self.seed,
            x=x,
            start=last,
            stop=self.steps,
            decode=None,
        ).latents

    def finish_from_basis(
        self, vector: np.ndarray, experts: np.ndarray, basis: np.ndarray
    ) -> float:
        """Scores and records a candidate as finished from its own `last_step_basis` (no UNet
        evaluation; equal to sampling it outright up to float rounding); returns its objective."""
        vector = np.asarray(vector, np.float64)
        key = self._key(vector, self.steps)
        record = self._lookup(key)
        if record is not None:
            self._note(key, record, None)
            return record["objective"]
        experts = np.asarray(experts, np.int64)
        ((_, images, scores, objs),) = self._mixture_scores(
            vector[None], experts, basis
        )
        record = self._record(vector, self.steps, scores[0], objs[0])
        if self.log is not None and jax.process_index() == 0:
            self.log.add_candidates([record])
        self._note(key, record, images[0])
        return record["objective"]

    def local_proxy(
        self, weights: np.ndarray, experts: np.ndarray, basis: np.ndarray
    ) -> np.ndarray:
        """`[N]` objectives of the candidates' images predicted from one finished candidate's
        `last_step_basis` (exact for that candidate, first-order close for its neighbours).
        Not logged: the prediction depends on which candidate the basis came from."""
        weights = np.asarray(weights, np.float64)
        experts = np.asarray(experts, np.int64)
        if np.any(np.delete(weights, experts, axis=1) != 0):
            raise ValueError(
                "local_proxy: weights are nonzero on experts without a basis"
            )
        out = np.full(len(weights), np.nan)
        for rows, _, _, objs in self._mixture_scores(weights, experts, basis):
            out[rows] = objs
        return out

    def seen(self, vector: np.ndarray) -> bool:
        """Whether this weight vector's finished score is known (this search or the log)."""
        return (
            self._lookup(self._key(np.asarray(vector, np.float64), self.steps))
            is not None
        )

    def cost(
        self, weights: np.ndarray, *, start: int = 0, stop: int | None = None
    ) -> int:
        """UNet evaluations `evaluate` would spend, ignoring logged scores."""
        stop = self.steps if stop is None else stop
        return self.sampler.cost(
            weights,
            start=start,
            stop=stop,
            image=self.target,
            seed=self.seed,
            steps=self.steps,
        )

    def _latent_shape(self) -> tuple[int, ...]:
        return tuple(self.target.prepared.conditions.shape[1:])

    # --- results -----------------------------------------------------------------------------

    def allowance(self, budget: int | None):
        """A callable returning how many UNet evaluations of `budget` are left, counting from
        now (infinity for no budget): each strategy's spending limit."""
        spent_before = self.unet_evaluations

        def left() -> float:
            if budget is None:
                return math.inf
            return budget - (self.unet_evaluations - spent_before)

        return left

    @property
    def unet_evaluations(self) -> int:
        return self.sampler.unet_evaluations - self._evals_before

    def finished(self) -> list[dict[str, Any]]:
        """Records of the finished candidates seen so far."""
        return [r for r in self._seen.values() if r["stage"] == self.steps]

    def best_vector(self) -> np.ndarray:
        if self._best is None:
            raise ValueError("no candidate has been finished and scored yet")
        return np.array(
            [self._best["weights"].get(e, 0.0) for e in self.experts], np.float64
        )

    def result(self, *, return_image: bool = True) -> SearchResult:
        """The best finished candidate and the cost so far."""
        vector = self.best_vector()
        image = self._best_image
        if return_image and image is None:
            # The best score came from the log: sample its image again (deterministic).
            image = self.sampler.sample(
                self.target, vector[None], steps=self.steps, seed=self.seed
            ).images[0]
        best = self._best
        psf = self.target.prepared.psf
        return SearchResult(
            weights=dict(best["weights"]),
            score=best["score"],
            objective=best["objective"],
            image=image if return_image else None,
            candidates_evaluated=len({k[-1] for k in self._seen}),
            candidates_finished=len(self.finished()),
            unet_evaluations=self.unet_evaluations,
            seconds=time.perf_counter() - self.t0,
            strategy=self.strategy,
            quality=self.quality.name,
            records=list(self._seen.values()),
            log_path=None if self.log is None else str(self.log.path),
            finished_images=None if self._kept is None else list(self._kept),
            deblur=None if psf is None else deblur_lib.psf_record(psf),
        )


def _better(a: float, b: float) -> bool:
    """a > b with NaN (a failed score) below everything."""
    if math.isnan(a):
        return False
    return math.isnan(b) or a > b
