// `ddpm data download fashion-mnist`: the one command that reaches the network, and only when asked.
import { Command } from 'commander';
import path from 'node:path';
import { downloadFashionMnist, OFFICIAL_FASHION_MNIST_URL } from '../data/download.js';

export function dataCommand(): Command {
  const data = new Command('data').description('datasets');
  data.command('download')
    .description('download a dataset and check it against pinned checksums')
    .argument('<dataset>', 'dataset name: fashion-mnist')
    .requiredOption('--dir <dir>', 'folder to write the files into')
    .option('--base-url <url>', 'mirror to fetch from', OFFICIAL_FASHION_MNIST_URL)
    .action(async (dataset: string, f: { dir: string; baseUrl: string }) => {
      if (dataset !== 'fashion-mnist') throw new Error(`unknown dataset "${dataset}"; available: fashion-mnist`);
      const res = await downloadFashionMnist({
        dir: path.resolve(f.dir), baseUrl: f.baseUrl,
        onProgress: (p) => { if (p.state !== 'downloading') process.stderr.write(`${p.file}: ${p.state}\n`); },
      });
      process.stderr.write(`fashion-mnist is in ${res.dir} (${res.files.map((x) => `${x.name}: ${x.status}`).join(', ')}); train with --data ${f.dir}\n`);
    });
  return data;
}
