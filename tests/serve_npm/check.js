// Drives `huginn serve` with the official OpenAI SDK (npm `openai`) and reads
// its /metrics with a Prometheus text-format parser
// (npm `parse-prometheus-text-format`). Run by tests/test_serve.cpp as
//   node check.js http://127.0.0.1:PORT
// against a server on a model with Huginn's chat format. Exits non-zero on
// the first failed check.
'use strict';
const assert = require('node:assert/strict');
const OpenAI = require('openai');
const parsePrometheusTextFormat = require('parse-prometheus-text-format');

async function main() {
  const base = process.argv[2];
  const client = new OpenAI({ baseURL: base + '/v1', apiKey: 'unused', maxRetries: 0, timeout: 60000 });

  const models = await client.models.list();
  const model = models.data[0].id;
  assert.ok(model.length > 0);

  // completions, with the depth fields passed through
  const c = await client.completions.create({ model, prompt: 'abc', max_tokens: 5, steps: 3, temperature: 0 });
  assert.equal(c.object, 'text_completion');
  assert.equal(typeof c.choices[0].text, 'string');
  assert.ok(['stop', 'length'].includes(c.choices[0].finish_reason));
  assert.equal(c.usage.completion_tokens, c.huginn.tokens.length);
  assert.equal(c.huginn.steps.length, c.huginn.tokens.length);
  for (const s of c.huginn.steps) assert.equal(s, 3);

  // chat, whole and streamed (with the usage chunk): the same text
  const messages = [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'a+b?' }];
  const whole = await client.chat.completions.create({ model, messages, max_tokens: 6, steps: 2, exit: 'kl:1e-3' });
  assert.equal(whole.object, 'chat.completion');
  assert.equal(whole.choices[0].message.role, 'assistant');
  const stream = await client.chat.completions.create({
    model, messages, max_tokens: 6, steps: 2, exit: 'kl:1e-3', stream: true, stream_options: { include_usage: true },
  });
  let text = '', usage = null, finish = null, chunks = 0;
  for await (const ch of stream) {
    ++chunks;
    if (ch.usage) usage = ch.usage;
    if (ch.choices.length) {
      text += ch.choices[0].delta.content ?? '';
      if (ch.choices[0].finish_reason) finish = ch.choices[0].finish_reason;
    }
  }
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish, whole.choices[0].finish_reason);
  assert.deepEqual(usage, whole.usage);
  assert.ok(chunks >= whole.usage.completion_tokens + 2);

  // n choices, seeded sampling: each choice i is reproducible
  const nreq = { model, messages, max_tokens: 5, temperature: 1.0, seed: 7, n: 3 };
  const n1 = await client.chat.completions.create(nreq);
  const n2 = await client.chat.completions.create(nreq);
  assert.equal(n1.choices.length, 3);
  assert.deepEqual(n1.choices.map((x) => x.index), [0, 1, 2]);
  assert.deepEqual(n1.choices.map((x) => x.message.content), n2.choices.map((x) => x.message.content));
  assert.equal(n1.usage.completion_tokens, n1.huginn.choices.reduce((a, x) => a + x.tokens.length, 0));

  // logprobs: chat (content entries with top_logprobs) and completions (the legacy shape)
  const lp = await client.chat.completions.create({ model, messages, max_tokens: 4, logprobs: true, top_logprobs: 2 });
  const content = lp.choices[0].logprobs.content;
  assert.equal(content.length, lp.usage.completion_tokens);
  for (const e of content) {
    assert.ok(e.logprob <= 0);
    assert.equal(e.top_logprobs.length, 2);
    assert.ok(e.top_logprobs[0].logprob >= e.top_logprobs[1].logprob);
    assert.ok(e.logprob <= e.top_logprobs[0].logprob + 1e-6);  // greedy: the token is the most likely
  }
  const clp = await client.completions.create({ model, prompt: 'abc', max_tokens: 3, logprobs: 1 });
  assert.equal(clp.choices[0].logprobs.token_logprobs.length, clp.usage.completion_tokens);
  assert.equal(clp.choices[0].logprobs.top_logprobs.length, clp.usage.completion_tokens);

  // streamed completions with n = 2: every chunk names its choice
  const cs = await client.completions.create({ model, prompt: 'abc', max_tokens: 3, n: 2, stream: true, temperature: 0 });
  const seen = new Set();
  for await (const ch of cs) for (const x of ch.choices) seen.add(x.index);
  assert.deepEqual([...seen].sort(), [0, 1]);

  // an error: the SDK raises its BadRequestError with the server's message
  await assert.rejects(client.completions.create({ model, prompt: 'abc', steps: 0 }), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError, String(e));
    assert.equal(e.status, 400);
    assert.match(e.message, /'steps' must be in/);
    return true;
  });

  // /metrics parses as Prometheus text and counts what was done
  const res = await fetch(base + '/metrics');
  assert.equal(res.status, 200);
  const families = parsePrometheusTextFormat(await res.text());
  const fam = (name) => {
    const f = families.find((x) => x.name === name);
    assert.ok(f, 'metric ' + name + ' missing');
    return f;
  };
  const value = (name) => Number(fam(name).metrics[0].value);
  assert.ok(value('huginn_generated_tokens_total') > 0);
  assert.ok(value('huginn_prompt_tokens_total') > 0);
  assert.equal(value('huginn_running_sequences'), 0);
  assert.equal(value('huginn_queue_length'), 0);
  assert.ok(value('huginn_iterations_per_token_mean') > 0);
  // passes that fed prompts: some, not more than all passes, and within the time in passes
  assert.ok(value('huginn_prompt_passes_total') >= 1);
  assert.ok(value('huginn_prompt_passes_total') <= value('huginn_passes_total'));
  assert.ok(value('huginn_prompt_pass_seconds_total') > 0);
  assert.ok(value('huginn_prompt_pass_seconds_total') <= value('huginn_busy_seconds_total'));
  const req = fam('huginn_requests_total');
  assert.equal(req.type, 'COUNTER');
  const completed = req.metrics.find((m) => m.labels.outcome === 'completed');
  assert.ok(Number(completed.value) >= 12, JSON.stringify(req));
  const ttft = fam('huginn_time_to_first_token_seconds');
  assert.equal(ttft.type, 'HISTOGRAM');
  const h = ttft.metrics[0];
  // every completed sequence had a first token; buckets are cumulative
  assert.equal(Number(h.buckets['+Inf']), Number(completed.value));
  const les = Object.keys(h.buckets).filter((k) => k !== '+Inf').map(Number).sort((a, b) => a - b);
  assert.ok(les.length >= 10);
  for (let i = 1; i < les.length; ++i) assert.ok(Number(h.buckets[String(les[i])]) >= Number(h.buckets[String(les[i - 1])]));

  console.log(JSON.stringify({ ok: true, model, completed: Number(completed.value), chunks }));
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
