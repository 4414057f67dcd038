import type { Translations } from "../../shared/pages/i18n";

interface Outcome {
  title: string;
  text: string;
}

export interface AccountTexts {
  openApp: string;
  openAppHint: string;
  account: Outcome;
  /** A link without a token, or with one that cannot be ours: said before anything is asked. */
  brokenLink: Outcome;
  reset: {
    title: string;
    intro: string;
    password: string;
    passwordHint: string;
    confirm: string;
    submit: string;
    mismatch: string;
    /** When the API's reason is not one of `WEAK_PASSWORD`'s: the API's own words follow. */
    weak: string;
    handoffTitle: string;
    handoffText: string;
    handoffButton: string;
    done: Outcome;
    /** Expired, used, or forged: the API does not say which, and neither does the page. */
    invalid: Outcome;
  };
  verify: {
    title: string;
    intro: string;
    submit: string;
    done: Outcome;
    invalid: Outcome;
    /** Another account took the address between the change and its confirmation. */
    taken: Outcome;
  };
}

export const TEXTS: Translations<AccountTexts> = {
  en: {
    openApp: "Open Adiuva",
    openAppHint: "Nothing happens? Then the app is not installed on this device: open it where it is.",
    account: {
      title: "Your Adiuva account",
      text: "Your password, e-mail address and devices are managed in the app.",
    },
    brokenLink: {
      title: "This link is incomplete",
      text: "Open the link from the mail again; if your mail program broke it over two lines, copy all of it into the address bar. A new link can be requested in the app.",
    },
    reset: {
      title: "Choose a new password",
      intro: "Enter the new password for your Adiuva account twice.",
      password: "New password",
      passwordHint: "At least 10 characters, not your e-mail address and not a common password.",
      confirm: "Repeat the new password",
      submit: "Change password",
      mismatch: "The two passwords are not the same. Enter them again.",
      weak: "This password cannot be used:",
      handoffTitle: "Adiuva installed on this device?",
      handoffText: "You can choose the new password in the app instead.",
      handoffButton: "Continue in the app",
      done: {
        title: "Password changed",
        text: "Your password was changed. Sign in again in the app with the new password.",
      },
      invalid: {
        title: "This link no longer works",
        text: "The link has expired or was already used. To get a new one, open the app and choose “Forgot password?” on the sign-in screen.",
      },
    },
    verify: {
      title: "Confirm your e-mail address",
      intro: "Press the button to confirm that this address belongs to your Adiuva account.",
      submit: "Confirm my address",
      done: { title: "Address confirmed", text: "Your e-mail address is confirmed. You can go back to the app." },
      invalid: {
        title: "This link no longer works",
        text: "The link has expired or was already used. If your address is not confirmed yet, the app can send you a new link.",
      },
      taken: {
        title: "Address already in use",
        text: "Another account started using this address before you confirmed it. Your account keeps its previous address; you can choose another one in the app.",
      },
    },
  },
  it: {
    openApp: "Apri Adiuva",
    openAppHint: "Non succede niente? Allora l'app non è installata su questo dispositivo: aprila dove si trova.",
    account: {
      title: "Il tuo account Adiuva",
      text: "Password, indirizzo e-mail e dispositivi si gestiscono nell'app.",
    },
    brokenLink: {
      title: "Questo link è incompleto",
      text: "Apri di nuovo il link dalla mail; se il programma di posta l'ha spezzato su due righe, copialo tutto nella barra degli indirizzi. Puoi chiedere un nuovo link dall'app.",
    },
    reset: {
      title: "Scegli una nuova password",
      intro: "Scrivi due volte la nuova password del tuo account Adiuva.",
      password: "Nuova password",
      passwordHint: "Almeno 10 caratteri, diversa dal tuo indirizzo e-mail e non una password comune.",
      confirm: "Ripeti la nuova password",
      submit: "Cambia password",
      mismatch: "Le due password non coincidono. Scrivile di nuovo.",
      weak: "Questa password non si può usare:",
      handoffTitle: "Adiuva è installata su questo dispositivo?",
      handoffText: "Puoi scegliere la nuova password direttamente nell'app.",
      handoffButton: "Continua nell'app",
      done: {
        title: "Password cambiata",
        text: "La tua password è stata cambiata. Accedi di nuovo nell'app con la nuova password.",
      },
      invalid: {
        title: "Questo link non è più valido",
        text: "Il link è scaduto o è già stato usato. Per averne uno nuovo, apri l'app e scegli “Password dimenticata?” nella schermata di accesso.",
      },
    },
    verify: {
      title: "Conferma il tuo indirizzo e-mail",
      intro: "Premi il pulsante per confermare che questo indirizzo appartiene al tuo account Adiuva.",
      submit: "Conferma l'indirizzo",
      done: {
        title: "Indirizzo confermato",
        text: "Il tuo indirizzo e-mail è confermato. Puoi tornare all'app.",
      },
      invalid: {
        title: "Questo link non è più valido",
        text: "Il link è scaduto o è già stato usato. Se il tuo indirizzo non è ancora confermato, l'app può inviarti un nuovo link.",
      },
      taken: {
        title: "Indirizzo già in uso",
        text: "Un altro account ha iniziato a usare questo indirizzo prima che tu lo confermassi. Il tuo account mantiene l'indirizzo precedente; puoi sceglierne un altro nell'app.",
      },
    },
  },
};

/**
 * The API's reasons for refusing a password (`passwordProblem` in src/auth/passwords.ts), in
 * Italian. A reason not listed here is shown as the API wrote it; a test keeps the list complete.
 */
export const WEAK_PASSWORD_IT: Record<string, string> = {
  "password must be at least 10 characters": "deve avere almeno 10 caratteri.",
  "password must be at most 256 characters": "può avere al massimo 256 caratteri.",
  "password is too common": "è troppo comune.",
  "password must not be the e-mail address": "non può essere il tuo indirizzo e-mail.",
  "password needs more distinct characters": "deve contenere più caratteri diversi.",
};
