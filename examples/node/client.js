#!/usr/bin/env node
// A routecore client in Node.js: loads protos/ at run time with @grpc/proto-loader.
//
//   node client.js [--addr 127.0.0.1:50051] route "What is 2+2?"
//   node client.js models
//   node client.js complete "Write a haiku about rain"
//   node client.js stream "Write a haiku about rain"
//
// Prints one JSON document per response (one per chunk for `stream`).
'use strict';

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO = path.resolve(__dirname, '..', '..', 'protos', 'routecore', 'v1', 'router.proto');

function loadClient(addr) {
  // oneofs: false: the proto has no oneof; proto3 `optional` fields would each print a
  // synthetic "_name": "name" key
  const def = protoLoader.loadSync(PROTO, {
    keepCase: true, longs: Number, enums: String, defaults: true, oneofs: false,
  });
  const pkg = grpc.loadPackageDefinition(def).routecore.v1;
  return new pkg.Router(addr, grpc.credentials.createInsecure());
}

function parseArgs(argv) {
  const out = { addr: '127.0.0.1:50051', rest: [], strategy: '', deadlineMs: 30000 };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--addr') out.addr = argv[++i];
    else if (argv[i] === '--strategy') out.strategy = argv[++i];
    else if (argv[i] === '--deadline-ms') out.deadlineMs = Number(argv[++i]);
    else out.rest.push(argv[i]);
  }
  return out;
}

function fail(err) {
  // A gRPC error: print its status code name and message, exit non-zero.
  const code = Object.keys(grpc.status).find((k) => grpc.status[k] === err.code) || err.code;
  console.error(JSON.stringify({ error: { code, message: err.details || err.message } }));
  process.exit(1);
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  const [command, prompt] = args.rest;
  const client = loadClient(args.addr);
  const deadline = new Date(Date.now() + args.deadlineMs);
  const route = { prompt: prompt || '', strategy: args.strategy };
  switch (command) {
    case 'route':
      client.Route({ ...route, explain: true }, { deadline }, (err, res) => (err ? fail(err) : console.log(JSON.stringify(res))));
      break;
    case 'models':
      client.ListModels({}, { deadline }, (err, res) => (err ? fail(err) : console.log(JSON.stringify(res))));
      break;
    case 'complete':
      client.Complete({ route, max_output_tokens: 256 }, { deadline },
        (err, res) => (err ? fail(err) : console.log(JSON.stringify(res))));
      break;
    case 'stream': {
      const call = client.CompleteStream({ route, max_output_tokens: 256 }, { deadline });
      call.on('data', (chunk) => console.log(JSON.stringify(chunk)));
      call.on('error', fail);
      call.on('end', () => client.close());
      break;
    }
    default:
      console.error('usage: client.js [--addr HOST:PORT] route|models|complete|stream [PROMPT]');
      process.exit(2);
  }
}

main();
