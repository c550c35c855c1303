// Line charts on uPlot: a loss curve that grows as events arrive, and schedule curves with a marker
// at the current t. The container carries data-points (how many x values are drawn) for the tests.
import uPlot from 'uplot';
import { h } from './dom.js';

export interface ChartOptions {
  testid: string;
  title: string;
  xLabel: string;
  yLabel: string;
  stroke?: string;
  height?: number;
}

export class LineChart {
  readonly el: HTMLDivElement;
  private plot: uPlot | null = null;
  private data: uPlot.AlignedData = [[], []];
  private marker: number | null = null;

  constructor(private readonly opts: ChartOptions) {
    this.el = h('div', { class: 'chart', testid: opts.testid, 'data-points': 0 });
    // uPlot needs a width; the container has none while its tab is hidden, so build on first size.
    new ResizeObserver(() => this.resize()).observe(this.el);
  }

  setData(x: number[], y: number[]): void {
    this.data = [x, y];
    this.el.dataset.points = String(x.length);
    this.plot?.setData(this.data);
  }

  /** A vertical line at x (null: none). */
  setMarker(x: number | null): void {
    this.marker = x;
    this.plot?.redraw(false);
  }

  private resize(): void {
    const width = Math.floor(this.el.clientWidth);
    if (width < 50) return;
    const height = this.opts.height ?? 220;
    if (this.plot) {
      if (this.plot.width !== width) this.plot.setSize({ width, height });
      return;
    }
    this.plot = new uPlot(this.config(width, height), this.data, this.el);
  }

  private config(width: number, height: number): uPlot.Options {
    const o = this.opts;
    const stroke = o.stroke ?? '#2f6fdf';
    return {
      title: o.title,
      width,
      height,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: false } },
      axes: [
        { label: o.xLabel, stroke: '#555', grid: { stroke: '#eee' } },
        { label: o.yLabel, stroke: '#555', grid: { stroke: '#eee' }, size: 60 },
      ],
      series: [{ label: o.xLabel }, { label: o.yLabel, stroke, width: 1.5, points: { show: false } }],
      hooks: { draw: [(u) => this.drawMarker(u)] },
    };
  }

  private drawMarker(u: uPlot): void {
    if (this.marker === null) return;
    const x = Math.round(u.valToPos(this.marker, 'x', true));
    const ctx = u.ctx;
    ctx.save();
    ctx.strokeStyle = '#d9480f';
    ctx.lineWidth = 2 * devicePixelRatio;
    ctx.beginPath();
    ctx.moveTo(x, u.bbox.top);
    ctx.lineTo(x, u.bbox.top + u.bbox.height);
    ctx.stroke();
    ctx.restore();
  }
}

/** Loss per step, merged from several sources (job progress, log rows) without duplicates. */
export class LossSeries {
  private readonly byStep = new Map<number, number>();

  constructor(private readonly chart: LineChart) {}

  add(points: Iterable<{ step: number; loss: number | null }>): void {
    let changed = false;
    for (const p of points) {
      if (p.loss === null || !Number.isFinite(p.loss) || p.loss <= 0) continue;
      if (this.byStep.get(p.step) === p.loss) continue;
      this.byStep.set(p.step, p.loss);
      changed = true;
    }
    if (changed) this.redraw();
  }

  clear(): void {
    this.byStep.clear();
    this.redraw();
  }

  private redraw(): void {
    const steps = [...this.byStep.keys()].sort((a, b) => a - b);
    this.chart.setData(steps, steps.map((s) => this.byStep.get(s) as number));
  }
}
