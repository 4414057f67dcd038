import type { Translations } from "../../shared/pages/i18n";
import type { PaidTier } from "../config";

/** Plan names as the app shows them; the same in every language. */
export const PLAN_NAMES: Record<PaidTier, string> = { pro: "Pro", power: "Power", team: "Team" };

export interface BillingTexts {
  openApp: string;
  openAppHint: string;
  success: {
    title: string;
    /** `{plan}` is the plan's name. */
    active: string;
    pending: string;
    timeout: string;
  };
  /** For a session the page cannot vouch for, or none: says nothing about any payment. */
  neutral: { title: string; text: string };
  cancel: { title: string; text: string };
  portal: { title: string; text: string };
}

export const TEXTS: Translations<BillingTexts> = {
  en: {
    openApp: "Open Adiuva",
    openAppHint: "If the app did not open by itself, use this button.",
    success: {
      title: "Payment complete",
      active: "Your plan is now {plan}.",
      pending: "Your payment went through. We are activating your plan; this usually takes a few seconds.",
      timeout: "Activation is taking longer than usual. Your plan will show in the app as soon as it is ready.",
    },
    neutral: { title: "Back from checkout", text: "Open the app to see your subscription." },
    cancel: {
      title: "Checkout cancelled",
      text: "No payment was made. You can choose a plan again from the app whenever you like.",
    },
    portal: {
      title: "Back from billing",
      text: "Changes you made in the billing portal reach the app within a few seconds.",
    },
  },
  it: {
    openApp: "Apri Adiuva",
    openAppHint: "Se l'app non si è aperta da sola, usa questo pulsante.",
    success: {
      title: "Pagamento completato",
      active: "Il tuo piano ora è {plan}.",
      pending: "Il pagamento è andato a buon fine. Stiamo attivando il tuo piano: di solito bastano pochi secondi.",
      timeout: "L'attivazione sta richiedendo più del solito. Il piano comparirà nell'app appena sarà pronto.",
    },
    neutral: { title: "Ritorno dal pagamento", text: "Apri l'app per vedere il tuo abbonamento." },
    cancel: {
      title: "Pagamento annullato",
      text: "Non è stato effettuato alcun pagamento. Puoi scegliere di nuovo un piano dall'app quando vuoi.",
    },
    portal: {
      title: "Ritorno dalla fatturazione",
      text: "Le modifiche fatte nel portale di fatturazione arrivano nell'app entro pochi secondi.",
    },
  },
};

/** A text with its `{plan}` filled in. */
export const withPlan = (text: string, plan: PaidTier): string => text.replaceAll("{plan}", PLAN_NAMES[plan]);
