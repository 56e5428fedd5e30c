import { useState } from 'preact/hooks';
import type { DepositAddressView, LightningInvoiceView, WithdrawBody } from '@idlemesh/sdk';
import { client } from '../api.js';
import { QrCode } from '../components/qr.js';
import { Badge, Copyable, Empty, ErrorBox, PageTitle, Section, Stat, Stats } from '../components/ui.js';
import { fmtMsat, fmtTime, shortId } from '../format.js';
import { useAction, usePoll, useTitle } from '../hooks.js';

export function Wallet() {
  useTitle('Wallet');
  const account = usePoll(() => client().account(undefined, { limit: 20 }));
  const withdrawals = usePoll(() => client().withdrawals(), 5000);
  const a = account.data?.account;
  return (
    <>
      <PageTitle sub={a ? <span>Account <code>{a.id}</code></span> : 'Your buyer account: deposit, spend on jobs, withdraw.'}>Wallet</PageTitle>
      <Section title="Balance">
        <ErrorBox error={account.error} />
        <Stats label="Balance">
          <Stat id="available" label="Available" value={a ? fmtMsat(a.availableMsat) : '…'} hint="may be spent or withdrawn now" />
          <Stat id="balance" label="Balance" value={a ? fmtMsat(a.balanceMsat) : '…'} />
          <Stat id="held" label="Held" value={a ? fmtMsat(a.heldMsat) : '…'} hint="escrow for jobs, withdrawals" />
          <Stat id="pending" label="Incoming" value={a ? fmtMsat(a.pendingMsat) : '…'} hint="deposits not final yet" />
        </Stats>
        {a?.frozen && <p class="bad" role="alert">This account is frozen: a credited deposit was reversed on chain.</p>}
      </Section>
      <div class="two-col">
        <DepositAddress />
        <LightningDeposit />
      </div>
      <Withdraw onDone={() => { withdrawals.reload(); account.reload(); }} />
      <Section title="Withdrawals">
        <ErrorBox error={withdrawals.error} />
        {withdrawals.data?.length === 0 && <p class="muted">No withdrawals yet.</p>}
        {withdrawals.data && withdrawals.data.length > 0 && (
          <div class="table-wrap" tabIndex={0}>
            <table class="ledger">
              <caption>Your withdrawals and their state</caption>
              <thead><tr><th scope="col">When</th><th scope="col">Amount</th><th scope="col">To</th><th scope="col">State</th><th scope="col">Transaction</th></tr></thead>
              <tbody>
                {withdrawals.data.map((w) => (
                  <tr key={w.id}>
                    <td>{fmtTime(w.createdAt)}</td>
                    <td>{fmtMsat(w.amountMsat)}</td>
                    <td class="mono">{w.method === 'chain' ? shortId(w.address ?? '', 20) : `invoice ${shortId(w.invoice ?? '', 16)}`}</td>
                    <td><Badge state={w.state} />{w.reason ? <span class="muted"> {w.reason}</span> : null}</td>
                    <td class="mono">{w.txid ? shortId(w.txid, 16) : w.paymentHash ? shortId(w.paymentHash, 16) : '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Section>
      <Section title="Latest transfers">
        {account.data?.transfers.length === 0 && <Empty>No transfers yet.</Empty>}
        {account.data && account.data.transfers.length > 0 && (
          <div class="table-wrap" tabIndex={0}>
            <table class="ledger">
              <caption>The ledger's newest entries on this account</caption>
              <thead><tr><th scope="col">When</th><th scope="col">What</th><th scope="col">Amount</th><th scope="col">Reference</th></tr></thead>
              <tbody>
                {account.data.transfers.map((t) => {
                  const incoming = t.creditAccount === a?.id;
                  // Holds and their releases move no money yet: say what they do instead of a sign.
                  const what = t.type === 'pending' ? (incoming ? 'incoming' : 'held') : t.type === 'void' || t.type === 'expire' ? 'released' : undefined;
                  return (
                    <tr key={t.id}>
                      <td>{fmtTime(t.timestamp)}</td>
                      <td>{t.code}{t.type === 'post' ? ' (final)' : ''}</td>
                      <td class={what === undefined && incoming ? 'good' : undefined}>{what !== undefined ? `${what} ${fmtMsat(t.amountMsat)}` : `${incoming ? '+' : '−'}${fmtMsat(t.amountMsat)}`}</td>
                      <td class="mono">{t.ref ? shortId(t.ref, 24) : '—'}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </Section>
    </>
  );
}

function DepositAddress() {
  const get = useAction((): Promise<DepositAddressView> => client().depositAddress());
  const d = get.result;
  return (
    <Section title="Deposit bitcoin" id="deposit">
      <p>A fresh address of the coordinator's treasury that credits your account after the required confirmations.</p>
      <button type="button" onClick={() => void get.run()} disabled={get.busy}>{d ? 'Another address' : 'Show a deposit address'}</button>
      <ErrorBox error={get.error} title="No deposit address" />
      {d && (
        <div class="deposit" data-address={d.address}>
          <QrCode text={d.address} label={`QR code of the deposit address ${d.address}`} />
          <Copyable value={d.address} label="deposit address" />
          <p class="muted">Network {d.network} · credited after {d.minConf} confirmations · address #{d.index}{d.reused ? ' (reused: no fresh one was free)' : ''}</p>
        </div>
      )}
    </Section>
  );
}

function LightningDeposit() {
  const [sats, setSats] = useState('10000');
  const get = useAction((): Promise<LightningInvoiceView> => client().lightningDeposit(Number(sats)));
  const inv = get.result;
  return (
    <Section title="Deposit with Lightning" id="lightning">
      <form class="form" onSubmit={(e) => { e.preventDefault(); void get.run(); }}>
        <label for="ln-sats">Amount (sats)</label>
        <input id="ln-sats" inputMode="numeric" required value={sats} onInput={(e) => setSats((e.currentTarget as HTMLInputElement).value)} />
        <button type="submit" disabled={get.busy}>Create invoice</button>
      </form>
      <ErrorBox error={get.error} title="No invoice" />
      {inv && (
        <div class="deposit">
          <QrCode text={inv.bolt11.toUpperCase()} label="QR code of the Lightning invoice" />
          <Copyable value={inv.bolt11} label="Lightning invoice" />
          <p class="muted">{fmtMsat(inv.amountMsat)} · expires {fmtTime(inv.expiresAt)}</p>
        </div>
      )}
    </Section>
  );
}

function Withdraw({ onDone }: { onDone: () => void }) {
  const [sats, setSats] = useState('');
  const [to, setTo] = useState('');
  const send = useAction(async () => {
    const dest = to.trim();
    const body: WithdrawBody = /^ln/i.test(dest) ? { invoice: dest } : { address: dest };
    if (sats.trim() !== '') body.sats = Number(sats);
    const w = await client().withdraw(body);
    onDone();
    return w;
  });
  return (
    <Section title="Withdraw" id="withdraw">
      <form class="form" onSubmit={(e) => { e.preventDefault(); void send.run(); }}>
        <label for="wd-to">Bitcoin address or Lightning invoice</label>
        <input id="wd-to" required autoComplete="off" spellcheck={false} value={to} onInput={(e) => setTo((e.currentTarget as HTMLInputElement).value)} />
        <label for="wd-sats">Amount (sats; an invoice carries its own)</label>
        <input id="wd-sats" inputMode="numeric" value={sats} onInput={(e) => setSats((e.currentTarget as HTMLInputElement).value)} />
        <button type="submit" disabled={send.busy}>Withdraw</button>
      </form>
      <ErrorBox error={send.error} title="The withdrawal was refused" />
      {send.result && <p class="good" role="status">Withdrawal {send.result.id} is {send.result.state}.</p>}
    </Section>
  );
}
