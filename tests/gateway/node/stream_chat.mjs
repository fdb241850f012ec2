// Streams one chat completion from llmtally's gateway with the openai npm package and prints, as one
// JSON line, the text it received and the usage chunk. Usage: node stream_chat.mjs BASE_URL MODEL
// (the key in LLMTALLY_TEST_KEY).
import OpenAI from "openai";

const [baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: process.env.LLMTALLY_TEST_KEY, maxRetries: 0 });
const stream = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: "how many tokens is this?" }],
  stream: true,
  stream_options: { include_usage: true },
});
let text = "";
let usage = null;
let id = null;
let chunks = 0;
for await (const chunk of stream) {
  chunks += 1;
  id = id ?? chunk.id;
  text += chunk.choices[0]?.delta?.content ?? "";
  usage = chunk.usage ?? usage;
}
console.log(JSON.stringify({ id, text, usage, chunks }));
