// JobService over Connect, gRPC and gRPC-Web.
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { ConnectError, Code } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { DeliverPolicy, jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { decodeEvent, EVENTS_STREAM, isTerminal, jobToProto, statusFromProto, subjects } from "@framefleet/common";
import { JobEventSchema, JobEventType, JobService, type JobEvent } from "@framefleet/gen/framefleet/v1/job_service_pb";
import { callerKey, unauthenticated, type Caller } from "./auth.ts";
import type { JobApi } from "./job-api.ts";
import type { WebhookDeliveries } from "./webhooks/api.ts";
import { assetRpcs, type Assets } from "./assets.ts";

function callerOf(ctx: HandlerContext): Caller {
  const c = ctx.values.get(callerKey);
  if (!c) throw unauthenticated();
  return c;
}

export function jobRoutes(api: JobApi, nc: NatsConnection, webhooks?: WebhookDeliveries, assets?: Assets) {
  return (router: ConnectRouter) =>
    router.service(JobService, {
      async submitJob(req, ctx) {
        const header = ctx.requestHeader.get("idempotency-key");
        if (req.spec && header && !req.spec.idempotencyKey) req.spec.idempotencyKey = header;
        return { job: await api.submit(callerOf(ctx), req.spec) };
      },
      async getJob(req, ctx) {
        return { job: await api.get(callerOf(ctx), req.jobId) };
      },
      async listJobs(req, ctx) {
        return api.list(callerOf(ctx), req.pageSize, req.pageToken, req.statuses);
      },
      async cancelJob(req, ctx) {
        return { job: await api.cancel(callerOf(ctx), req.jobId, req.reason) };
      },
      async *watchJob(req, ctx) {
        for await (const event of watchEvents(api, nc, callerOf(ctx), req.jobId, Number(req.afterSequence), ctx.signal)) {
          yield { event };
        }
      },
      async *downloadOutput(req, ctx) {
        for await (const part of api.followOutput(callerOf(ctx), req.jobId, Number(req.offset), ctx.signal)) {
          yield { data: part.data, offset: BigInt(part.offset), totalSize: BigInt(part.totalSize) };
        }
      },
      ...(assets && assetRpcs(assets, callerOf)),
      ...(webhooks && {
        async listWebhookDeliveries(req, ctx) {
          const caller = callerOf(ctx);
          await api.getDoc(caller, req.jobId); // NotFound unless the job is the caller's
          return { deliveries: await webhooks.list(caller, req.jobId) };
        },
        async resendWebhook(req, ctx) {
          return { delivery: await webhooks.resend(callerOf(ctx), req.deliveryId) };
        },
      }),
    });
}

/**
 * A job's events from the event stream, after the given sequence, ending with the job's final status. A client that
 * comes after the end (and after the stream forgot the events) still gets the final state.
 */
export async function* watchEvents(
  api: JobApi,
  nc: NatsConnection,
  caller: Caller,
  jobId: string,
  afterSequence: number,
  signal: AbortSignal,
): AsyncGenerator<JobEvent> {
  const doc = await api.getDoc(caller, jobId);
  if (isTerminal(doc.status) && afterSequence >= doc.lastEventSeq) {
    yield finalEvent(doc.lastEventSeq, jobToProto(doc));
    return;
  }
  const consumer = await jetstream(nc).consumers.get(EVENTS_STREAM, {
    // One subject (not a list): nats-server before 2.10 accepts only a single filter.
    filter_subjects: subjects.jobAll(jobId),
    ...(afterSequence > 0
      ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: afterSequence + 1 }
      : { deliver_policy: DeliverPolicy.All }),
  });
  const messages = await consumer.consume();
  const stop = () => void messages.close();
  signal.addEventListener("abort", stop, { once: true });
  try {
    for await (const m of messages) {
      const e = decodeEvent(m.data);
      if (e.payload.case !== "job") continue;
      const event = e.payload.value;
      event.sequence = BigInt(m.seq);
      if (event.job) event.job.lastEventSequence = event.sequence;
      yield event;
      const status = statusFromProto(event.status);
      if (event.type === JobEventType.STATUS_CHANGED && status && isTerminal(status)) return;
    }
  } finally {
    signal.removeEventListener("abort", stop);
    await messages.close();
  }
}

function finalEvent(sequence: number, job: ReturnType<typeof jobToProto>): JobEvent {
  return create(JobEventSchema, {
    sequence: BigInt(sequence),
    jobId: job.id,
    time: job.endTime ?? job.updateTime,
    type: JobEventType.STATUS_CHANGED,
    status: job.status,
    progress: job.progress,
    message: job.error?.message ?? "",
    job,
  });
}
