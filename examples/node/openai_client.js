#!/usr/bin/env node
// routecore's HTTP front door from Node.js, through the official `openai` package, unchanged.
//
//   node openai_client.js [--base-url http://127.0.0.1:8080/v1] [--model auto] complete "What is 2+2?"
//   node openai_client.js stream "Write a haiku about rain"
//   node openai_client.js models
//
// Prints one JSON document (one per chunk for `stream`); an API error prints
// {"error": {"status", "code", "message"}} on stderr and exits 1.
'use strict';

const OpenAI = require('openai');

function parseArgs(argv) {
  const out = { baseURL: 'http://127.0.0.1:8080/v1', model: 'auto', rest: [] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--base-url') out.baseURL = argv[++i];
    else if (argv[i] === '--model') out.model = argv[++i];
    else out.rest.push(argv[i]);
  }
  return out;
}

function fail(err) {
  console.error(JSON.stringify({ error: { status: err.status, code: err.code, message: err.message } }));
  process.exit(1);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const [command, prompt] = args.rest;
  const client = new OpenAI({ baseURL: args.baseURL, apiKey: process.env.ROUTECORE_API_KEY || 'unused',
                              maxRetries: 0 });
  const messages = [{ role: 'user', content: prompt || '' }];
  switch (command) {
    case 'complete': {
      // withResponse() also returns the HTTP response: routecore's x-routecore-* headers.
      const { data, response } = await client.chat.completions
        .create({ model: args.model, messages }).withResponse();
      console.log(JSON.stringify({ ...data, headers: {
        request_id: response.headers.get('x-routecore-request-id'),
        cost_usd: response.headers.get('x-routecore-cost-usd'),
        decision: response.headers.get('x-routecore-decision') } }));
      break;
    }
    case 'stream': {
      const stream = await client.chat.completions.create({
        model: args.model, messages, stream: true, stream_options: { include_usage: true } });
      for await (const chunk of stream) console.log(JSON.stringify(chunk));
      break;
    }
    case 'models': {
      const ids = [];
      for await (const m of client.models.list()) ids.push(m.id);
      console.log(JSON.stringify(ids));
      break;
    }
    default:
      console.error('usage: openai_client.js [--base-url URL] [--model NAME] complete|stream|models [PROMPT]');
      process.exit(2);
  }
}

main().catch(fail);
