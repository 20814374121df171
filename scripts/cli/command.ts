/** The shape every `pgwarden <area>` command module exports. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  /** environment, read only through shared/config.ts's cliConfigFromEnv */
  env: Record<string, string | undefined>;
}

/** Exit code, or undefined when the arguments name no command of this area (usage is printed). */
export type CliCommand = (args: string[], io: CliIo) => Promise<number | undefined>;
