#!/usr/bin/env node
// One recommendation's round trip through phoihop, as an agency's Node.js system does it:
//
//   1. start an HTTP server that receives phoihop's signed webhooks (Standard Webhooks);
//   2. submit a recommendation over Kafka (CloudEvents binary mode: ce_* headers, JSON value)
//      and compute its recommendation id (uuid5, the same function the bus uses);
//   3. wait for the `assigned` webhook of that recommendation, verify its signature with the
//      `standardwebhooks` package and read which agency it was assigned to;
//   4. answer it over Kafka as that agency (key = recommendation id);
//   5. read the audit trail over HTTP until the answer is there.
//
// In real life steps 2 and 3-4 belong to two systems (the submitting body and the assigned
// body); one script plays both so that the whole contract is exercised in one run.
//
// Usage: node round_trip.mjs [--option value ...]  (every option also reads an env var)
//   --bootstrap       PHOIHOP_BOOTSTRAP        Kafka bootstrap (127.0.0.1:9092)
//   --topic-prefix    PHOIHOP_TOPIC_PREFIX     deployment's topic prefix (phoihop)
//   --audit-url       PHOIHOP_AUDIT_URL        audit service (http://127.0.0.1:8081)
//   --api-key         PHOIHOP_API_KEY          key allowed to read the trail: the submitter's,
//                                              the assignee's or a supervisor's
//                                              (dev-<submitter>)
//   --submitter       PHOIHOP_SUBMITTER        submitting agency's code (UBMTTQ_TINH)
//   --locality        PHOIHOP_LOCALITY         administrative unit code (xa-an-binh)
//   --text            PHOIHOP_TEXT             the recommendation (a road repair, varied per run)
//   --webhook-secret  PHOIHOP_WEBHOOK_SECRET   the subscription's secret, whsec_... (required)
//   --webhook-host    PHOIHOP_WEBHOOK_HOST     address to listen on (127.0.0.1)
//   --webhook-port    PHOIHOP_WEBHOOK_PORT     port to listen on (8090)
//   --timeout         PHOIHOP_TIMEOUT          seconds to wait for each step (60)
//
// Progress goes to stderr; the last line on stdout is a JSON summary. Exit code 0 on success,
// 1 on any failure, 2 on bad usage.

import { createHash, randomInt, randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { parseArgs } from "node:util";

import kafkajs from "kafkajs";
import standardwebhooks from "standardwebhooks";

const { Kafka, Partitioners, logLevel } = kafkajs;
const { Webhook } = standardwebhooks;

// ----------------------------------------------------------------------------- the contract

// uuid5 namespace of recommendation ids (phoihop_schemas.codec.SUBMISSION_ID_NAMESPACE).
const SUBMISSION_ID_NAMESPACE = "0b6f5a3e-2c7d-4e41-8f0a-696e67657374";
const SUBMISSION_TYPE = "vn.phoihop.inbound.submission.v1";
const RESPONSE_TYPE = "vn.phoihop.inbound.response.v1";
const ASSIGNED_TYPE = "vn.phoihop.recommendation.assigned.v1";

/** RFC 4122 version-5 UUID (SHA-1), as Python's uuid.uuid5(namespace, name). */
export function uuid5(namespace, name) {
  const ns = Buffer.from(namespace.replaceAll("-", ""), "hex");
  const bytes = createHash("sha1").update(ns).update(name, "utf8").digest().subarray(0, 16);
  bytes[6] = (bytes[6] & 0x0f) | 0x50;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const h = bytes.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The id the bus gives a submission: uuid5 over "<submitted_by>\x1f<idempotency key>". */
export function recommendationId(submittedBy, key) {
  return uuid5(SUBMISSION_ID_NAMESPACE, `${submittedBy}\x1f${key}`);
}

/** CloudEvents 1.0 attributes as Kafka headers (binary content mode). */
function ceHeaders({ type, source, subject }) {
  const headers = {
    ce_specversion: "1.0",
    ce_id: randomUUID(),
    ce_source: source,
    ce_type: type,
    ce_time: new Date().toISOString(),
    "content-type": "application/json",
  };
  if (subject) headers.ce_subject = subject;
  return headers;
}

// ----------------------------------------------------------------------------- settings

function settings() {
  const { values } = parseArgs({
    options: {
      bootstrap: { type: "string" },
      "topic-prefix": { type: "string" },
      "audit-url": { type: "string" },
      "api-key": { type: "string" },
      submitter: { type: "string" },
      locality: { type: "string" },
      text: { type: "string" },
      "webhook-secret": { type: "string" },
      "webhook-host": { type: "string" },
      "webhook-port": { type: "string" },
      timeout: { type: "string" },
    },
  });
  const env = process.env;
  const pick = (name, variable, fallback) => values[name] ?? env[variable] ?? fallback;
  const submitter = pick("submitter", "PHOIHOP_SUBMITTER", "UBMTTQ_TINH");
  const hamlet = randomInt(2, 99);
  const s = {
    bootstrap: pick("bootstrap", "PHOIHOP_BOOTSTRAP", "127.0.0.1:9092").split(","),
    prefix: pick("topic-prefix", "PHOIHOP_TOPIC_PREFIX", "phoihop"),
    auditUrl: pick("audit-url", "PHOIHOP_AUDIT_URL", "http://127.0.0.1:8081").replace(/\/+$/, ""),
    apiKey: pick("api-key", "PHOIHOP_API_KEY", `dev-${submitter}`),
    submitter,
    locality: pick("locality", "PHOIHOP_LOCALITY", "xa-an-binh"),
    // Hamlet and alley numbers vary per run: the bus merges a repeat of an open case (same
    // commune, same concern, same objects) instead of assigning it again.
    text: pick(
      "text",
      "PHOIHOP_TEXT",
      `Cử tri thôn ${hamlet} kiến nghị sửa chữa tuyến đường liên thôn ${hamlet} – thôn ` +
        `${hamlet + 1}, đoạn qua ngõ ${randomInt(2, 999)}; mặt đường bê tông đã vỡ nát, ` +
        "xe chở lúa đi lại khó khăn.",
    ),
    secret: pick("webhook-secret", "PHOIHOP_WEBHOOK_SECRET", ""),
    host: pick("webhook-host", "PHOIHOP_WEBHOOK_HOST", "127.0.0.1"),
    port: Number(pick("webhook-port", "PHOIHOP_WEBHOOK_PORT", "8090")),
    timeoutMs: 1000 * Number(pick("timeout", "PHOIHOP_TIMEOUT", "60")),
  };
  if (!s.secret.startsWith("whsec_")) {
    throw new UsageError("--webhook-secret / PHOIHOP_WEBHOOK_SECRET (whsec_...) is required");
  }
  if (!Number.isInteger(s.port) || s.port < 1 || s.port > 65535) {
    throw new UsageError(`bad webhook port ${s.port}`);
  }
  if (!(s.timeoutMs > 0)) throw new UsageError("bad timeout");
  return s;
}

class UsageError extends Error {}

const log = (...parts) => console.error("[node-example]", ...parts);

// ----------------------------------------------------------------------------- webhooks

/**
 * An HTTP server that verifies every delivery (Standard Webhooks) and hands the verified
 * CloudEvents (structured mode, application/cloudevents+json) to `waitFor` callers.
 */
class WebhookReceiver {
  constructor(secret) {
    this.webhook = new Webhook(secret);
    this.events = [];
    this.waiters = [];
    this.rejected = 0;
    this.server = createServer((req, res) => this.handle(req, res));
  }

  listen(host, port) {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => resolve());
    });
  }

  close() {
    this.server.closeAllConnections?.();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  handle(req, res) {
    if (req.method !== "POST") {
      res.writeHead(405, { allow: "POST" }).end();
      return;
    }
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", () => {
      // Verify the raw bytes, before any parsing: the signature covers the body as sent.
      const body = Buffer.concat(chunks).toString("utf8");
      let event;
      try {
        event = this.webhook.verify(body, req.headers);
      } catch (error) {
        this.rejected += 1;
        log(`webhook refused (${error.message}); webhook-id ${req.headers["webhook-id"]}`);
        res.writeHead(401).end();
        return;
      }
      const contentType = String(req.headers["content-type"] ?? "");
      if (!contentType.startsWith("application/cloudevents+json")) {
        log(`unexpected content-type ${contentType}`);
      }
      // 2xx = delivered. The same webhook-id may arrive again (retries): de-duplicate on it.
      res.writeHead(204).end();
      this.events.push({ id: req.headers["webhook-id"], event });
      for (const waiter of [...this.waiters]) waiter();
    });
  }

  /** The first verified CloudEvent matching `predicate`, or a rejection after `ms`. */
  waitFor(predicate, ms, what) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.events.find((e) => predicate(e.event));
        if (!found) return false;
        done();
        resolve(found);
        return true;
      };
      const timer = setTimeout(() => {
        done();
        const refused = this.rejected ? ` (${this.rejected} delivery(ies) failed verification)` : "";
        reject(new Error(`no ${what} within ${ms / 1000}s${refused}`));
      }, ms);
      const done = () => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
      };
      this.waiters.push(check);
      check();
    });
  }
}

// ----------------------------------------------------------------------------- audit

async function readTrail(s, recId) {
  const response = await fetch(`${s.auditUrl}/v1/recommendations/${recId}/trail`, {
    headers: { "X-API-Key": s.apiKey, accept: "application/json" },
    signal: AbortSignal.timeout(10_000),
  });
  if (response.status === 404) return null; // not recorded yet (or not visible to this key)
  const body = await response.json();
  if (!response.ok) {
    // {"error": reason, "detail": ...}: a 401 is a wrong key, never worth waiting for
    throw new Error(`audit answered ${response.status}: ${body.error}: ${JSON.stringify(body.detail)}`);
  }
  return body;
}

async function waitForAnswer(s, recId, text) {
  const deadline = Date.now() + s.timeoutMs;
  let last = null;
  while (Date.now() < deadline) {
    last = await readTrail(s, recId);
    const answered = last?.events.find((e) => e.type === "answered");
    if (answered) {
      if (answered.data.text !== text) {
        throw new Error(`the trail's answer is ${JSON.stringify(answered.data.text)}`);
      }
      return last;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  const types = last ? last.events.map((e) => e.type).join(", ") : "nothing";
  throw new Error(`no answered event in the trail within ${s.timeoutMs / 1000}s (trail: ${types})`);
}

// ----------------------------------------------------------------------------- the flow

async function main() {
  const s = settings();
  const topics = {
    submissions: `${s.prefix}.inbound.submissions`,
    responses: `${s.prefix}.inbound.responses`,
  };

  const receiver = new WebhookReceiver(s.secret);
  await receiver.listen(s.host, s.port);
  log(`webhook receiver on http://${s.host}:${s.port}/`);

  const kafka = new Kafka({
    clientId: `example-node-${s.submitter}`,
    brokers: s.bootstrap,
    logLevel: logLevel.WARN,
    retry: { retries: 5 },
  });
  // The default partitioner (murmur2, as the Java client): the bus never depends on it.
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  try {
    // --- 1. submit over Kafka
    const idempotencyKey = `example-node-${randomUUID()}`;
    const recId = recommendationId(s.submitter, idempotencyKey);
    const submission = {
      kind: "kien_nghi",
      channel: "tiep_xuc_cu_tri",
      locality: s.locality,
      text: s.text,
      submitted_at: new Date().toISOString(),
      source_ref: `NODE-EXAMPLE/${idempotencyKey.slice(-12)}`,
      submitted_by: s.submitter, // must be the sending agency's own code
      idempotency_key: idempotencyKey, // decides the recommendation id
    };
    await producer.send({
      topic: topics.submissions,
      acks: -1,
      messages: [
        {
          key: idempotencyKey, // free on this topic; the bus derives the id itself
          value: JSON.stringify(submission),
          headers: ceHeaders({ type: SUBMISSION_TYPE, source: `/agency/${s.submitter}` }),
        },
      ],
    });
    log(`submitted ${idempotencyKey} to ${topics.submissions}; recommendation id ${recId}`);

    // --- 2. the signed `assigned` webhook
    const { id: webhookId, event: assigned } = await receiver.waitFor(
      (e) => e.type === ASSIGNED_TYPE && e.subject === recId,
      s.timeoutMs,
      `assigned webhook for ${recId}`,
    );
    const assignee = assigned.data.agency;
    log(
      `verified webhook ${webhookId}: assigned to ${assignee} (category ` +
        `${assigned.data.category}, level ${assigned.data.level}, deadline ${assigned.data.deadline})`,
    );

    // --- 3. answer over Kafka as the assignee; key = recommendation id
    const answerText = `${assignee} đã đưa tuyến đường vào kế hoạch sửa chữa quý III (${recId.slice(0, 8)}).`;
    const responseId = `${assignee}-answer-${randomUUID()}`;
    await producer.send({
      topic: topics.responses,
      acks: -1,
      messages: [
        {
          key: recId,
          value: JSON.stringify({
            response_id: responseId, // the agency's own id: a re-sent response applies once
            recommendation_id: recId,
            agency: assignee,
            action: "answer",
            text: answerText,
            responded_at: new Date().toISOString(),
          }),
          headers: ceHeaders({ type: RESPONSE_TYPE, source: `/agency/${assignee}`, subject: recId }),
        },
      ],
    });
    log(`answered ${recId} on ${topics.responses} (response ${responseId})`);

    // --- 4. the trail over HTTP
    const trail = await waitForAnswer(s, recId, answerText);
    const types = trail.events.map((e) => e.type);
    const sequences = trail.events.map((e) => e.sequence);
    log(`trail of ${recId}: ${types.join(" → ")}`);
    const expected = ["received", "assigned", "answered"];
    if (JSON.stringify(types) !== JSON.stringify(expected)) {
      throw new Error(`trail is ${types.join(", ")}, expected ${expected.join(", ")}`);
    }
    if (JSON.stringify(sequences) !== "[1,2,3]") throw new Error(`sequences ${sequences}`);
    const answered = trail.events[2].data;
    if (answered.agency !== assignee) throw new Error(`answered by ${answered.agency}`);
    if (trail.events[0].data.submitted_by !== s.submitter) throw new Error("wrong submitter");
    console.log(
      JSON.stringify({
        ok: true,
        recommendation_id: recId,
        idempotency_key: idempotencyKey,
        assignee,
        webhook_id: webhookId,
        response_id: responseId,
        answer: answerText,
        trail: types,
      }),
    );
  } finally {
    await producer.disconnect();
    await receiver.close();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    log(`FAILED: ${error instanceof UsageError ? "usage: " : ""}${error.message}`);
    console.log(JSON.stringify({ ok: false, error: error.message }));
    process.exit(error instanceof UsageError ? 2 : 1);
  },
);
