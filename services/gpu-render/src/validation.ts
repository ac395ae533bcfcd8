// Checks shared by the tasks' plan() functions; each throws invalid_input naming the field.
import { parseHttpUrl } from "@framefleet/common";
import { invalidInput, toRenderError } from "./errors.ts";

/** A short, printable rendering of an untrusted value for error messages. */
export function shown(v: string): string {
  return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
}

/** A required http(s) URL (no credentials), normalised. */
export function httpUrl(raw: string, field: string): string {
  if (raw.trim() === "") throw invalidInput(field, "is required");
  try {
    return parseHttpUrl(raw, field).toString();
  } catch (err) {
    throw toRenderError(err);
  }
}

/** A number of seconds: finite, 0 or more, at most `max`. */
export function seconds(field: string, v: number, max: number): number {
  if (!Number.isFinite(v) || v < 0 || v > max) throw invalidInput(field, `must be between 0 and ${max} seconds, got ${v}`);
  return v;
}
