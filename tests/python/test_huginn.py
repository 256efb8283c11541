"""The huginn module against the CLI, bit for bit, on the shipped task model
and the reference's tiny golden fixture; bad arguments raise clear errors."""
import json
import os

import numpy as np
import pytest

from conftest import TASKS_MODEL, TINY, read_safetensors, same_bits

HARD = "323122331233133323333122222223333122="


def cli_stream_text(stream, with_tokenizer):
    """What `huginn generate --show-steps` prints for these streamed tokens."""
    out = ""
    for t in stream:
        if t.thought:
            out += f"<thought {t.id}[{t.steps}]> "
        elif t.id < 0:
            out += t.text
        elif with_tokenizer:
            out += f"{t.text}[{t.steps}]"
        else:
            out += f"{t.id}[{t.steps}] "
    return out + "\n"


# ---- loading, config, tokenizer -------------------------------------------
def test_done_when(huginn):
    m = huginn.Model(TASKS_MODEL)
    shape = m.trace(m.tokenizer.encode("2132122="), steps=16).latents.shape
    assert shape == (16, 9, 64)  # BOS + 8 characters


def test_config_and_tokenizer(tasks_model, tiny, cli):
    c = tasks_model.config
    assert (c.n_embd, c.n_heads, c.n_prelude, c.n_core, c.n_coda) == (64, 4, 1, 2, 1)
    assert c.to_dict()["n_embd"] == 64
    tok = tasks_model.tokenizer
    plain = [int(x) for x in cli("tokenize", "-m", TASKS_MODEL, "-p", HARD).stdout.split()]
    special = [int(x) for x in cli("tokenize", "-m", TASKS_MODEL, "-p", HARD, "--add-special").stdout.split()]
    assert tok.encode(HARD, add_special=False) == plain
    assert tok.encode(HARD) == special
    assert tok.decode(tok.encode(HARD, add_special=False)) == HARD
    assert tok.decode(np.array(plain)) == HARD
    text = tok.format_chat([("system", "be brief"), {"role": "user", "content": "hi"}])
    assert text.startswith("<|begin_text|><|begin_header|>system<|end_header|>")
    with pytest.raises(ValueError, match="not Huginn's chat tokenizer"):  # a character tokenizer
        tok.chat("hi")
    assert tiny.tokenizer is None
    assert tiny.config.vocab_size == 512


# ---- forward ----------------------------------------------------------------
@pytest.mark.parametrize("which", ["tasks", "tiny"])
@pytest.mark.parametrize("init", ["zero", 3])
def test_forward_equals_cli(which, init, huginn, tasks_model, tiny, cli, tmp_path):
    m, path = (tasks_model, TASKS_MODEL) if which == "tasks" else (tiny, TINY)
    ids = [96, 20, 19, 17, 18, 28] if which == "tasks" else [1, 5, 9, 300, 42, 7, 7]
    out = tmp_path / "f.safetensors"
    args = ["forward", "-m", path, "--ids", ",".join(map(str, ids)), "--steps", 8, "--out", out]
    if init != "zero":
        args += ["--init-scale", 1, "--seed", init]
    cli(*args)
    ref = read_safetensors(out)
    logits, latents = m.forward(ids, steps=8, init=init, latents=True)
    assert logits.shape == (len(ids), m.config.vocab_size)
    assert same_bits(logits, ref["logits"][0])
    assert same_bits(latents, ref["latent_states"][0])
    assert same_bits(m.forward(np.array(ids), steps=8, init=init), logits)
    assert not logits.flags.owndata  # a view of the C++ buffer


# ---- trace ------------------------------------------------------------------
def test_trace_equals_cli(tasks_model, cli, tmp_path):
    cli("trace", "-m", TASKS_MODEL, "-p", HARD, "--steps", 24, "--out", tmp_path)
    ref = read_safetensors(tmp_path / "states.safetensors")
    js = json.loads((tmp_path / "trace.json").read_text())
    ids = tasks_model.tokenizer.encode(HARD)
    assert js["input_ids"] == ids
    t = tasks_model.trace(ids, steps=24)
    assert t.latents.shape == (24, len(ids), 64)
    assert same_bits(t.states, ref["states"])
    assert same_bits(t.latents, ref["latents"])
    assert same_bits(t.initial_state, ref["initial_state"])
    assert same_bits(t.logits[:, 0, :], ref["logits_last"])
    a = t.analyze()
    assert a["behaviour"] == js["behaviour"] and a["settle_iteration"] == js["settle_iteration"]
    assert np.allclose(a["norm"], [it["norm"] for it in js["iterations"]], rtol=1e-12)
    # zero copy: the arrays are views of the trace's buffers
    assert not t.latents.flags.owndata
    assert t.latents.__array_interface__["data"][0] == t.latents.__array_interface__["data"][0]
    # chosen positions
    t2 = tasks_model.trace(ids, steps=24, positions=[0, 5, -1])
    assert t2.logits.shape == (24, 3, 128)
    assert same_bits(t2.states, t.states)
    assert np.allclose(t2.logits[:, 2, :], t.logits[:, 0, :], rtol=1e-5, atol=1e-5)
    assert set(t.exit_values) == {"kl", "minp-kl", "entropy-diff", "latent-diff", "cosine", "argmax-stability"}
    assert t.exit_values["kl"].shape == (24,)


def test_trace_tiny_equals_cli(tiny, cli, tmp_path):
    ids = [1, 5, 9, 300, 42]
    cli("trace", "-m", TINY, "--ids", ",".join(map(str, ids)), "--steps", 12, "--out", tmp_path,
        "--init-scale", 1, "--seed", 5)
    ref = read_safetensors(tmp_path / "states.safetensors")
    t = tiny.trace(ids, steps=12, init=5)
    assert same_bits(t.states, ref["states"]) and same_bits(t.latents, ref["latents"])
    assert same_bits(t.logits[:, 0, :], ref["logits_last"])


def test_trace_exit_values_match_the_decode_loop(tasks_model):
    ids = tasks_model.tokenizer.encode(HARD)
    t = tasks_model.trace(ids, steps=16)
    g = tasks_model.generate(ids, steps=16, exit="kl:0", max_tokens=1, record_checks=True)
    kl = [v for (_, v, _) in g.checks[0]]  # (a KL of -2e-11 below 0 may end the pass early)
    assert len(kl) >= 12 and np.allclose(kl, t.exit_values["kl"][: len(kl)], rtol=1e-4, atol=1e-9)
    g = tasks_model.generate(ids, steps=16, exit="latent-diff:0", max_tokens=1, record_checks=True)
    assert np.allclose([v for (_, v, _) in g.checks[0]], t.exit_values["latent-diff"], rtol=1e-4, atol=1e-9)


# ---- generation ---------------------------------------------------------------
@pytest.mark.parametrize("args", [
    ["--steps", 32],
    ["--steps", 64, "--exit", "kl:1e-6"],
    ["--steps", 64, "--exit", "latent-diff:0.01", "--cache", "latest-m4"],
])
def test_generate_equals_cli_tasks(args, tasks_model, cli):
    ref = cli("generate", "-m", TASKS_MODEL, "-p", HARD, "--show-steps", *args).stdout
    kw = {"steps": args[1]}
    if "--exit" in args:
        kw["exit"] = args[args.index("--exit") + 1]
    if "--cache" in args:
        kw["cache"] = args[args.index("--cache") + 1]
    s = tasks_model.generate(HARD, stream=True, **kw)
    assert cli_stream_text(s, True) == ref
    g = tasks_model.generate(HARD, **kw)
    assert g.tokens == s.result.tokens and g.steps == s.result.steps
    assert g.text == tasks_model.tokenizer.decode(g.tokens)


@pytest.mark.parametrize("args", [
    ["--steps", 8, "-n", 12],
    ["--steps", 16, "--exit", "kl:5e-4", "--cache", "latest-m4", "-n", 12],
    ["--steps", 16, "--exit", "kl:5e-4", "--cache", "latest-m4-f16", "-n", 12],
    ["--steps", 8, "-n", 10, "--temperature", 0.8, "--top-k", 20, "--seed", 7],
    ["--steps", 8, "-n", 10, "--continuous"],
    ["--steps", 8, "-n", 8, "--soft-thoughts", "3,k=8"],
])
def test_generate_equals_cli_tiny(args, tiny, cli):
    ids = [1, 5, 9, 300, 42]
    ref = cli("generate", "-m", TINY, "--ids", ",".join(map(str, ids)), "--show-steps", *args).stdout
    kw = {"steps": args[1], "max_tokens": args[args.index("-n") + 1]}
    for flag, key in [("--exit", "exit"), ("--cache", "cache"), ("--temperature", "temperature"),
                      ("--top-k", "top_k"), ("--seed", "seed")]:
        if flag in args:
            kw[key] = args[args.index(flag) + 1]
    if "--continuous" in args:
        kw["continuous"] = True
    if "--soft-thoughts" in args:
        kw.update(soft_thoughts=3, soft_top_k=8)
    assert cli_stream_text(tiny.generate(ids, stream=True, **kw), False) == ref


@pytest.mark.parametrize("cache", ["latest-m4", "latest-m4-f16"])
def test_batch_equals_single(tiny, cache):
    prompts = [[1, 5, 9], [300, 42, 7, 7, 1], [3]]
    kw = dict(steps=16, exit="kl:5e-4", cache=cache, max_tokens=8)
    batch = tiny.generate(prompts, **kw)
    assert len(batch) == 3
    for p, g in zip(prompts, batch):
        one = tiny.generate(p, **kw)
        assert g.tokens == one.tokens and g.steps == one.steps
        assert one.kv_bytes == tiny.generate(p, **dict(kw, cache="latest-m4")).kv_bytes // (2 if "f16" in cache else 1)
    toks = list(tiny.generate(prompts, stream=True, **kw))
    assert sorted({t.seq for t in toks}) == [0, 1, 2]


def test_speculative_and_parallel_equal_cli(tiny, cli):
    ids = "1,5,9,300,42"
    ref = cli("generate", "-m", TINY, "--ids", ids, "--steps", 16, "-n", 12, "--show-steps",
              "--speculative", "draft=4,lookahead=4").stdout
    s = tiny.speculative([1, 5, 9, 300, 42], steps=16, draft=4, lookahead=4, max_tokens=12, stream=True)
    assert cli_stream_text(s, False) == ref
    r = tiny.speculative([1, 5, 9, 300, 42], steps=16, draft=4, lookahead=4, max_tokens=12)
    assert r.tokens == s.result.tokens and r.drafted >= r.accepted
    ref = cli("generate", "-m", TINY, "--ids", ids, "--steps", 16, "-n", 12, "--show-steps",
              "--parallel", "inner=4").stdout
    s = tiny.parallel([1, 5, 9, 300, 42], steps=16, inner=4, max_tokens=12, stream=True)
    assert cli_stream_text(s, False) == ref
    r = tiny.parallel([1, 5, 9, 300, 42], steps=16, inner=4, max_tokens=12)
    assert r.tokens == s.result.tokens and len(r.steps) == len(r.tokens)


def test_custom_exit_rule(tiny):
    ids = [1, 5, 9, 300, 42]
    seen = []

    def rule(steps, state, logits):
        seen.append((steps, state.shape, None if logits is None else logits.shape))
        assert not state.flags.writeable and not logits.flags.writeable  # views of the decode loop's buffers
        return steps >= 5

    g = tiny.generate(ids, steps=16, exit=rule, max_tokens=6)
    fixed = tiny.generate(ids, steps=5, max_tokens=6)
    assert g.tokens == fixed.tokens and set(g.steps) == {5}
    assert seen[0] == (1, (5, 64), (512,)) and seen[-1][1] == (1, 64)
    g2 = tiny.generate(ids, steps=16, exit=lambda s, st, lg: lg is None and s >= 3, exit_needs_logits=False,
                       max_tokens=4)
    assert set(g2.steps) == {3}
    # the same rule streamed (called from the engine's worker thread)
    assert [t.steps for t in tiny.generate(ids, steps=16, exit=rule, max_tokens=6, stream=True)] == g.steps
    # a KL rule in Python gives the built-in criterion's depths
    prev = {}

    def kl_rule(steps, state, logits):
        lp = logits.astype(np.float64) - logits.max()
        lp -= np.log(np.exp(lp).sum())
        if steps == 1:
            prev["lp"] = np.full_like(lp, -np.log(len(lp)))
        kl = float(np.sum(np.exp(prev["lp"]) * (prev["lp"] - lp)))
        prev["lp"] = lp
        return kl < 5e-4

    a = tiny.generate(ids, steps=32, exit=kl_rule, max_tokens=8)
    b = tiny.generate(ids, steps=32, exit="kl:5e-4", max_tokens=8)
    assert a.tokens == b.tokens
    assert sum(abs(x - y) for x, y in zip(a.steps, b.steps)) <= 2  # float32 vs float64 sums at the threshold

    def bad(steps, state, logits):
        raise KeyError("boom")

    with pytest.raises(ValueError, match="exit rule raised.*boom"):
        tiny.generate(ids, exit=bad)


def test_stream_early_exit_and_session(tasks_model, tiny):
    s = tiny.generate([1, 2, 3], steps=8, max_tokens=200, default_stops=False, stream=True)
    first = next(s)
    assert first.steps == 8
    s.close()
    assert s.result is None
    del s
    sess = tasks_model.session(steps=16)
    g1 = sess.turn("2132122=")
    assert g1.tokens and sess.length > 0
    one = tasks_model.generate("2132122=", steps=16)
    assert g1.tokens == one.tokens


def test_tasks_evaluate_equals_cli(huginn, tasks_model, cli):
    ref = json.loads(cli("eval", "-m", TASKS_MODEL, "--task", "jumps", "--difficulty", "20", "--steps", "1,8",
                         "--n", 30, "--json").stdout)
    rs = huginn.tasks.evaluate(tasks_model, "jumps", difficulty=20, steps=[1, 8], n=30)
    assert [r["steps"] for r in rs] == [1, 8]
    assert ref["difficulty"] == 20 and len(ref["results"]) == 2
    for r, q in zip(rs, ref["results"]):
        assert r["steps"] == q["steps"] and r["difficulty"] == 20
        assert (r["accuracy"], r["correct"], r["n"]) == (q["accuracy"], q["correct"], q["n"])
        assert (r["mean_steps"], r["mean_first_token_steps"]) == (q["mean_steps"], q["mean_first_token_steps"])
    assert rs[1]["accuracy"] >= rs[0]["accuracy"]
    # an adaptive exit
    ref = json.loads(cli("eval", "-m", TASKS_MODEL, "--task", "jumps", "--difficulty", "24", "--steps", "32",
                         "--exit", "kl:1e-6", "--n", 20, "--json").stdout)
    rs = huginn.tasks.evaluate(tasks_model, "jumps", difficulty="24", steps=32, exit="kl:1e-6", n=20)
    q = ref["results"][0]
    assert (rs[0]["correct"], rs[0]["mean_steps"]) == (q["correct"], q["mean_steps"]) and rs[0]["exit"] == ref["exit"]
    assert "jumps" in huginn.tasks.names()
    assert len(huginn.tasks.instances("jumps", 12, n=3)) == 3


# ---- errors -------------------------------------------------------------------
def test_errors(huginn, tasks_model, tiny):
    with pytest.raises(ValueError, match="does not exist"):
        huginn.Model("/nonexistent/model")
    with pytest.raises(ValueError, match="vocabulary"):
        tiny.forward([1, 2, 100000])
    with pytest.raises(ValueError, match="no tokens"):
        tiny.forward([])
    with pytest.raises(TypeError, match="string"):
        tiny.forward("abc")
    with pytest.raises(ValueError, match="unknown exit criterion 'bogus'"):
        tiny.generate([1, 2], exit="bogus")
    with pytest.raises(TypeError, match="unexpected keyword argument 'temprature'"):
        tiny.generate([1, 2], temprature=0.5)
    with pytest.raises(ValueError, match="steps must be in"):
        tiny.generate([1, 2], steps=-1)
    with pytest.raises(ValueError, match="tokenizer.json"):
        tiny.generate("some text")
    with pytest.raises(ValueError, match="init must be 'zero'"):
        tiny.forward([1, 2], init="random")
    with pytest.raises(ValueError, match="position 9 is outside"):
        tiny.trace([1, 2], steps=2, positions=[9])
    with pytest.raises(ValueError):
        tiny.generate([1, 2], cache="nonsense")
    with pytest.raises(ValueError, match="unknown task|known"):
        huginn.tasks.evaluate(tasks_model, "nosuchtask", difficulty=4)
    assert issubclass(huginn.Error, ValueError)


def test_gguf_model_equals_cli(huginn, cli, tmp_path):
    """A quantized one-file model: Python loads it (tokenizer from the file) and generates what the CLI does."""
    path = str(tmp_path / "tasks-q8_0.gguf")
    cli("quantize", TASKS_MODEL, path, "--type", "q8_0")
    m = huginn.Model(path)
    ref = cli("generate", "-m", path, "-p", HARD, "--show-steps", "--steps", 16).stdout
    s = m.generate(HARD, stream=True, steps=16)
    assert cli_stream_text(s, True) == ref


OURO = os.path.join(os.path.dirname(TINY), "ouro", "model")


@pytest.mark.parametrize("args", [
    ["-n", 8],
    ["-n", 8, "--exit", "gate:0.5"],
    ["-n", 8, "--steps", 2],
    ["-n", 8, "--exit", "kl:1e-3", "--cache", "last-loop"],
])
def test_ouro_equals_cli(args, huginn, cli, tmp_path):
    """The second family through the same module: an Ouro (LoopLM) directory and its GGUF file generate what
    the CLI does, the learned exit gate included (each token's loop count as the CLI reports it)."""
    q = str(tmp_path / "ouro-q8_0.gguf")
    cli("quantize", OURO, q, "--type", "q8_0")
    ids = [5, 6, 7, 8]
    for path in (OURO, q):
        m = huginn.Model(path)
        assert m.config.arch == "ouro"
        ref = cli("generate", "-m", path, "--ids", ",".join(map(str, ids)), "--show-steps", "--no-default-stops",
                  *args).stdout
        kw = {"max_tokens": args[1], "default_stops": False}
        for flag, key in [("--exit", "exit"), ("--cache", "cache"), ("--steps", "steps")]:
            if flag in args:
                kw[key] = args[args.index(flag) + 1]
        assert cli_stream_text(m.generate(ids, stream=True, **kw), False) == ref
