// Drives a running Start-CkServer with the official OpenAI client for Node.js (npm 'openai', locked in
// package-lock.json). Run from the folder the clients are installed in (tests copy it there). Input: environment
// CKLLM_BASE_URL (…/v1), CKLLM_API_KEY, CKLLM_CHAT_MODEL, CKLLM_RAG_MODEL. Output: one JSON object on stdout with
// what each call returned (or the error status it got); the Pester file asserts on it.
import OpenAI from 'openai';

const baseURL = process.env.CKLLM_BASE_URL;
const apiKey = process.env.CKLLM_API_KEY || 'no-key';
const chatModel = process.env.CKLLM_CHAT_MODEL;
const ragModel = process.env.CKLLM_RAG_MODEL;
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 120_000 });
const results = {};

async function attempt(name, run) {
    try {
        results[name] = await run();
    } catch (error) {
        results[name] = { error: { status: error.status ?? null, type: error.type ?? null, code: error.code ?? null, message: String(error.message) } };
    }
}

await attempt('models', async () => (await client.models.list()).data.map(m => m.id));
// The context window each model entry reports (vLLM's max_model_len field, passed through by the client).
await attempt('modelWindows', async () => Object.fromEntries((await client.models.list()).data.map(m => [m.id, m.max_model_len ?? null])));

await attempt('chat', async () => {
    const r = await client.chat.completions.create({ model: chatModel, messages: [{ role: 'user', content: 'Hello there' }], max_tokens: 8, temperature: 0 });
    return { content: r.choices[0].message.content, finish: r.choices[0].finish_reason, usage: r.usage, object: r.object };
});

await attempt('chatStream', async () => {
    const stream = await client.chat.completions.create({
        model: chatModel, messages: [{ role: 'user', content: 'Hello there' }], max_tokens: 8, temperature: 0, stream: true,
        stream_options: { include_usage: true },
    });
    let content = '';
    let chunks = 0;
    let finish = null;
    let usage = null;
    for await (const chunk of stream) {
        chunks++;
        if (chunk.usage) usage = chunk.usage;
        const choice = chunk.choices[0];
        if (!choice) continue;
        content += choice.delta?.content ?? '';
        if (choice.finish_reason) finish = choice.finish_reason;
    }
    return { content, chunks, finish, usage };
});

await attempt('jsonSchema', async () => {
    const r = await client.chat.completions.create({
        model: chatModel, messages: [{ role: 'user', content: 'Give me JSON' }], max_tokens: 100, temperature: 0.7, seed: 5,
        response_format: {
            type: 'json_schema',
            json_schema: {
                name: 'answer', strict: true,
                schema: { type: 'object', properties: { color: { enum: ['red', 'green'] }, ok: { type: 'boolean' } }, required: ['color', 'ok'], additionalProperties: false },
            },
        },
    });
    const content = r.choices[0].message.content;
    return { content, parsed: JSON.parse(content) };
});

await attempt('completion', async () => {
    const r = await client.completions.create({ model: chatModel, prompt: 'Once upon a time', max_tokens: 6, temperature: 0 });
    return { text: r.choices[0].text, finish: r.choices[0].finish_reason, usage: r.usage, object: r.object };
});

// Several prompts and n > 1 in one request: choices in OpenAI's order (prompt i's j-th choice is i * n + j).
await attempt('completionBatch', async () => {
    const r = await client.completions.create({ model: chatModel, prompt: ['Once upon a time', 'The sea'], n: 2, max_tokens: 6, temperature: 0 });
    return { choices: r.choices.map(c => ({ index: c.index, text: c.text, finish: c.finish_reason })), usage: r.usage };
});

await attempt('completionBatchSingles', async () => {
    const texts = [];
    for (const prompt of ['Once upon a time', 'The sea']) {
        const r = await client.completions.create({ model: chatModel, prompt, max_tokens: 6, temperature: 0 });
        texts.push({ text: r.choices[0].text, usage: r.usage });
    }
    return texts;
});

await attempt('completionBatchStream', async () => {
    const stream = await client.completions.create({
        model: chatModel, prompt: ['Once upon a time', 'The sea'], n: 2, max_tokens: 6, temperature: 0, stream: true, stream_options: { include_usage: true },
    });
    const texts = {};
    const finishes = {};
    let usage = null;
    for await (const chunk of stream) {
        if (chunk.usage) usage = chunk.usage;
        for (const c of chunk.choices) {
            texts[c.index] = (texts[c.index] ?? '') + c.text;
            if (c.finish_reason) finishes[c.index] = c.finish_reason;
        }
    }
    return { texts, finishes, usage };
});

// Sampled with a seed: the n choices differ from one another.
await attempt('completionSampled', async () =>
    (await client.completions.create({ model: chatModel, prompt: 'The sea', n: 3, max_tokens: 12, temperature: 1.5, seed: 11 })).choices.map(c => c.text));

await attempt('completionTooMany', async () => client.completions.create({ model: chatModel, prompt: ['a', 'b'], n: 64, max_tokens: 1 }));

await attempt('embeddings', async () => {
    const r = await client.embeddings.create({ model: ragModel, input: ['volcanoes erupt', 'bread rises'] });
    const norms = r.data.map(d => Math.sqrt(d.embedding.reduce((sum, x) => sum + x * x, 0)));
    return { count: r.data.length, dimensions: r.data[0].embedding.length, norms, usage: r.usage };
});

await attempt('rag', async () => {
    const r = await client.chat.completions.create({
        model: ragModel, messages: [{ role: 'user', content: 'Which volcano on Hawaii erupted from 1983 to 2018?' }], max_tokens: 12, temperature: 0,
    });
    return { content: r.choices[0].message.content, citations: r.citations ?? null, usage: r.usage };
});

await attempt('ragStream', async () => {
    const stream = await client.chat.completions.create({
        model: ragModel, messages: [{ role: 'user', content: 'Which volcano on Hawaii erupted from 1983 to 2018?' }], max_tokens: 12, temperature: 0, stream: true,
    });
    let content = '';
    let citations = null;
    for await (const chunk of stream) {
        content += chunk.choices[0]?.delta?.content ?? '';
        if (chunk.citations) citations = chunk.citations;
    }
    return { content, citations };
});

await attempt('unknownModel', async () => client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }));

await attempt('wrongKey', async () => {
    const wrong = new OpenAI({ baseURL, apiKey: 'wrong-key', maxRetries: 0 });
    return (await wrong.models.list()).data.map(m => m.id);
});

process.stdout.write(JSON.stringify(results));
