// Drives a CkLlm MCP server with the official MCP TypeScript SDK and prints one JSON object with what it saw.
// Usage (cwd = the folder where the test task installed the clients, $env:CKLLM_TEST_CLIENTS):
//   node mcp-client.mjs <spec.json>
// spec: { "transport": "stdio", "command": "...", "args": [...], "env": {...}, "calls": [{ "name", "arguments" }] }
//    or { "transport": "http", "url": "http://127.0.0.1:PORT/mcp", "apiKey": "..." (optional), "calls": [...] }
// Output: { server, tools, results: [CallToolResult (isError always set) | { thrown, code }], clientErrors, connectError, stderr }
import { readFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const spec = JSON.parse(readFileSync(process.argv[2], "utf8"));
const output = { connectError: null, clientErrors: [], tools: [], results: [], stderr: "" };

let transport;
if (spec.transport === "stdio") {
  transport = new StdioClientTransport({
    command: spec.command,
    args: spec.args,
    env: { ...process.env, ...(spec.env ?? {}) },
    stderr: "pipe",
  });
  transport.stderr?.on("data", (chunk) => { output.stderr += chunk.toString(); });
} else {
  const headers = spec.apiKey ? { Authorization: `Bearer ${spec.apiKey}` } : {};
  transport = new StreamableHTTPClientTransport(new URL(spec.url), { requestInit: { headers } });
}

const client = new Client({ name: "ckllm-tests", version: "1.0.0" });
// A line on the server's stdout that is not JSON-RPC surfaces here (the SDK skips it and reports it).
client.onerror = (error) => output.clientErrors.push(String(error?.message ?? error));

try {
  await client.connect(transport);
  output.server = client.getServerVersion();
  output.tools = (await client.listTools()).tools;
  for (const call of spec.calls ?? []) {
    try {
      // callTool checks structuredContent against the tool's outputSchema.
      const result = await client.callTool({ name: call.name, arguments: call.arguments ?? {} });
      output.results.push({ isError: false, thrown: null, ...result });
    } catch (error) {
      output.results.push({ isError: null, thrown: String(error?.message ?? error), code: error?.code ?? null });
    }
  }
} catch (error) {
  output.connectError = String(error?.message ?? error);
  output.connectErrorCode = error?.code ?? null;
} finally {
  await client.close().catch(() => {});
}
console.log(JSON.stringify(output));
