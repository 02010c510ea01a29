// flow.js - one side of the OpenTelemetry SQS flow that tests/e2e/otel_sdk.py
// drives: the real OpenTelemetry JS SDK, its OTLP/HTTP exporter (JSON or
// protobuf) pointed at `hoptrace ingest --otlp`, and the aws-sdk
// instrumentation around @aws-sdk/client-sqs talking to the test's SQS
// stand-in.
//
//   node flow.js produce|consume   (settings in the environment, below)
//
// produce: N requests, each a SERVER root span whose handler sends one
//   message (SendMessage: the instrumentation's PRODUCER span, with the
//   message id the stand-in returned).
// consume: one poll (a root span) that receives the batch (ReceiveMessage:
//   the instrumentation's receive span) and handles each message in
//   messages.forEach (the instrumentation's CONSUMER process span per
//   message, linked to its producer's span context).
// Every finished span is printed on stdout as one JSON line (ids, times in
// ns, attributes), so the test computes what hoptrace must answer from
// what the SDK recorded.
'use strict';

const side = process.argv[2];
const env = process.env;
const { trace, context, SpanKind } = require('@opentelemetry/api');
const { NodeTracerProvider } = require('@opentelemetry/sdk-trace-node');
const { BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { Resource } = require('@opentelemetry/resources');
const { registerInstrumentations } = require('@opentelemetry/instrumentation');
const { AwsInstrumentation } = require('@opentelemetry/instrumentation-aws-sdk');
const Exporter = env.HT_OTLP_ENCODING === 'protobuf'
  ? require('@opentelemetry/exporter-trace-otlp-proto').OTLPTraceExporter
  : require('@opentelemetry/exporter-trace-otlp-http').OTLPTraceExporter;

function ns(hr) {
  return (BigInt(hr[0]) * 1000000000n + BigInt(hr[1])).toString();
}

// prints every span as it ends
class Recorder {
  onStart() {}
  onEnd(span) {
    const c = span.spanContext();
    process.stdout.write(JSON.stringify({
      service: span.resource.attributes['service.name'],
      name: span.name,
      kind: span.kind,
      traceId: c.traceId,
      spanId: c.spanId,
      parentSpanId: span.parentSpanId || null,
      start: ns(span.startTime),
      end: ns(span.endTime),
      attributes: span.attributes,
      links: span.links.map((l) => ({ traceId: l.context.traceId, spanId: l.context.spanId })),
    }) + '\n');
  }
  shutdown() { return Promise.resolve(); }
  forceFlush() { return Promise.resolve(); }
}

const exporter = new Exporter({
  url: env.HT_OTLP_URL,
  compression: env.HT_OTLP_GZIP === '1' ? 'gzip' : 'none',
});
const provider = new NodeTracerProvider({
  resource: new Resource({ 'service.name': side === 'produce' ? 'order-api' : 'order-worker' }),
  spanProcessors: [new Recorder(), new BatchSpanProcessor(exporter, { scheduledDelayMillis: 60000 })],
});
provider.register();
registerInstrumentations({ tracerProvider: provider, instrumentations: [new AwsInstrumentation()] });

// required after the instrumentation is registered, so it is patched
const { SQSClient, SendMessageCommand, ReceiveMessageCommand } = require('@aws-sdk/client-sqs');
const sqs = new SQSClient({
  endpoint: env.HT_SQS_ENDPOINT,
  region: 'us-east-1',
  credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
});
const queueUrl = env.HT_SQS_ENDPOINT + '/000000000000/' + env.HT_SQS_QUEUE;
const tracer = trace.getTracer('hoptrace-e2e');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function produce() {
  const n = parseInt(env.HT_REQUESTS || '2', 10);
  for (let i = 0; i < n; i++) {
    const root = tracer.startSpan('POST /orders', { kind: SpanKind.SERVER });
    await context.with(trace.setSpan(context.active(), root), async () => {
      await sleep(5);
      await sqs.send(new SendMessageCommand({
        QueueUrl: queueUrl,
        MessageBody: JSON.stringify({ order: i }),
      }));
      await sleep(3);
    });
    root.end();
    await sleep(10);
  }
}

async function consume() {
  const root = tracer.startSpan('poll ' + env.HT_SQS_QUEUE, { kind: SpanKind.SERVER });
  await context.with(trace.setSpan(context.active(), root), async () => {
    await sleep(4);
    const out = await sqs.send(new ReceiveMessageCommand({
      QueueUrl: queueUrl,
      MaxNumberOfMessages: 10,
      MessageAttributeNames: ['All'],
    }));
    const messages = out.Messages || [];
    if (messages.length === 0)
      throw new Error('the stand-in returned no message');
    messages.forEach((m) => {
      const t = Date.now();
      while (Date.now() - t < 3) { /* handle the message */ }
    });
    await sleep(2);
  });
  root.end();
}

(async () => {
  await (side === 'produce' ? produce() : consume());
  await provider.forceFlush();
  await provider.shutdown();
})().catch((e) => {
  console.error('flow.js ' + side + ': ' + (e && e.stack ? e.stack : e));
  process.exit(1);
});
