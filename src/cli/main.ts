import { Command, CommanderError } from 'commander';
import { oneLine } from '../errors.js';
import { AGENT_VERSION } from '../version.js';
import { registerDemo } from './demo.js';
import { registerCache } from './cache.js';
import { EXIT_OUTPUT_CLOSED, stdoutClosed, watchOutput } from './output.js';
import { EXIT, ServerCommandError } from './server-client.js';
import { registerDeploy } from './deploy.js';
import { registerInvoke } from './invoke.js';
import { registerImage } from './image.js';
import { registerOperator } from './operator.js';
import { registerServe } from './serve.js';
import { registerToken } from './token.js';
import { registerAccessPoint } from './access-point.js';
import { registerS3Key } from './s3-key.js';

/** Set by `sandlet agent`, whose process lives on after its action returned. */
let agentRuns = false;

export function buildProgram(): Command {
  const program = new Command('sandlet')
    .description('sandbox runtime gateway: run storlets on object data, one sandbox per scope')
    .version(AGENT_VERSION)
    .showHelpAfterError(false)
    // Usage errors read like every other error: one `sandlet: …` line (exit 2, see main()).
    .configureOutput({ outputError: (str, write) => write(`sandlet: ${oneLine(str.replace(/^error: /, ''))}\n`) })
    .exitOverride();
  registerDemo(program);
  registerInvoke(program);
  registerDeploy(program);
  registerImage(program);
  registerCache(program);
  registerServe(program);
  registerToken(program);
  registerOperator(program);
  registerAccessPoint(program);
  registerS3Key(program);
  program
    .command('agent')
    .description('run the in-sandbox agent (what sandboxes start; not for everyday use)')
    .argument('<role>', 'factory or daemon')
    .allowUnknownOption(true)
    .helpOption(false)
    .action(async () => {
      agentRuns = true;
      const { runAgent } = await import('../agent/main.js');
      const at = process.argv.indexOf('agent');
      await runAgent(process.argv.slice(at + 1));
    });
  return program;
}

export async function main(argv: string[]): Promise<void> {
  watchOutput();
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (stdoutClosed.aborted) {
      // The failure is the closed output itself (or came of it): nothing to report.
    } else if (err instanceof ServerCommandError) {
      process.stderr.write(`sandlet: ${oneLine(err)}\n`);
      process.exitCode = err.exitCode;
    } else if (err instanceof CommanderError) {
      // Commander printed its one line (or the help/version asked for).
      process.exitCode = err.exitCode === 0 ? 0 : EXIT.usage;
    } else {
      process.stderr.write(`sandlet: ${oneLine(err)}\n`);
      process.exitCode = 1;
    }
  }
  if (stdoutClosed.aborted) process.exitCode = EXIT_OUTPUT_CLOSED;
  // The command is done. A handle something failed to close (e.g. a Docker event stream that
  // connected after the gateway closed) must not keep a one-shot command alive forever; normally
  // the process has exited long before this unref'd timer could fire.
  if (!agentRuns) setTimeout(() => process.exit(), 2000).unref();
}
