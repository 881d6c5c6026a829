/** Options of `init` (script tag: data-site, data-endpoint, data-consent, data-datalayer, data-dnt). */
export interface Options {
  /** Configured site id (CONTRACT.md section 1). */
  site: string;
  /** Collector endpoint; default `/v1/events` on the page's origin (script tag: the script's origin). */
  endpoint?: string;
  /** `send`: nothing sent or stored until consent; `store`: sent, but nothing stored until consent. */
  consent?: 'send' | 'store';
  /** Capture GA4 ecommerce events pushed to `window.dataLayer` (gtag and GTM shapes). */
  datalayer?: boolean;
  /** Honour Do Not Track and Global Privacy Control: send and store nothing. */
  dnt?: boolean;
  /** Milliseconds to wait before sending a batch that is not full; default 1000. */
  flush?: number;
}

/** Properties of a touchpoint; `value`, `currency`, `order_id` and `items` are read by the funnel. */
export interface Props {
  value?: number;
  currency?: string;
  order_id?: string;
  items?: { id?: string; price?: number; quantity?: number }[];
  [key: string]: unknown;
}

export function init(options: Options): void;
/** Queues a touchpoint such as `add_to_cart` or `Product Added`. */
export function track(type: string, props?: Props): void;
/** A page_view for the current URL, once per URL (also automatic on load and navigation). */
export function page(): void;
/** The visitor's consent: true starts storing and sending, false forgets everything. */
export function consent(granted: boolean): void;

/** The page API: `touchstream('init' | 'track' | 'page' | 'consent', ...)`; never throws. */
declare function touchstream(command: 'init', options: Options): void;
declare function touchstream(command: 'track', type: string, props?: Props): void;
declare function touchstream(command: 'page'): void;
declare function touchstream(command: 'consent', granted: boolean): void;
export { touchstream };
export default touchstream;
