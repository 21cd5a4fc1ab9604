import type { Command } from './command';

export const sandboxCommand: Command = {
  summary: 'run one export cycle against the built-in local sandbox (Azurite and a simulated Defender tenant)',
  usage: 'Usage: defender-export sandbox',
  run() {
    return Promise.resolve(0);
  },
};
