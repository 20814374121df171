/**
 * A Slack channel as chat.postMessage takes it: a conversation ID (C…, G…) or a channel name, with
 * or without the leading '#' (lowercase letters, digits, '-' and '_', at most 80 characters).
 */
export function isSlackChannel(value: string): boolean {
  return /^[CG][A-Z0-9]{8,20}$/.test(value) || /^#?[a-z0-9][a-z0-9_-]{0,79}$/.test(value);
}
