import { render } from 'preact';
import { App } from './app.js';
import { onLinkClick } from './router.js';
import './styles.css';

const root = document.getElementById('app');
// Links inside the app change pages without reloading.
document.addEventListener('click', onLinkClick);
if (root) render(<App />, root);
