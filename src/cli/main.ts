import { Command, CommanderError } from 'commander';
import { oneLine } from '../errors.js';
import { AGENT_VERSION } from '../version.js';
import { registerDemo } from './demo.js';
import { registerCache } from './cache.js';
import { ServerCommandError } from './server-client.js';
import { registerDeploy } from './deploy.js';
import { registerInvoke } from './invoke.js';
import { registerImage } from './image.js';
import { registerOperator } from './operator.js';
import { registerServe } from './serve.js';
import { registerToken } from './token.js';
import { registerAccessPoint } from './access-point.js';
import { registerS3Key } from './s3-key.js';

export function buildProgram(): Command {
  const program = new Command('sandlet')
    .description('sandbox runtime gateway: run storlets on object data, one sandbox per scope')
    .version(AGENT_VERSION)
    .showHelpAfterError(false)
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
      const { runAgent } = await import('../agent/main.js');
      const at = process.argv.indexOf('agent');
      await runAgent(process.argv.slice(at + 1));
    });
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof ServerCommandError) {
      process.stderr.write(`sandlet: ${oneLine(err)}\n`);
      process.exitCode = err.exitCode;
      return;
    }
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode;
      return; // commander already printed its one line
    }
    process.stderr.write(`sandlet: ${oneLine(err)}\n`);
    process.exitCode = 1;
  }
}
